//! # failover-core
//!
//! The sync-async failover pattern, without any infrastructure.
//!
//! A client posts a request. The [`engine::Engine`] tries the protected
//! backend under a hard deadline; if the backend answers in time the client
//! gets that answer. If it does not (timeout, 5xx, 429, connection error), or
//! the [`breaker`] says the backend is unhealthy, or too many sync attempts
//! are running, the request is captured durably as a [`ticket::Ticket`] plus a
//! queue message and the client gets `202 Accepted` with a ticket id.
//!
//! A worker (crate `failover-worker`) later claims the ticket with a
//! compare-and-set, calls the backend, retries with backoff and finally
//! notifies the client by webhook ([`webhook`]) and topic.
//!
//! Everything outside this crate is reached through [`ports`]: the backend,
//! the ticket and idempotency stores, the queue, the notifiers and the clock.
//! Adapters (embedded SQLite, AWS) implement them and pass one shared
//! conformance suite, so this crate never knows where it runs.

pub mod attempt;
pub mod backoff;
pub mod body;
pub mod breaker;
pub mod callback;
pub mod changes;
pub mod config;
pub mod drain;
pub mod drill;
pub mod engine;
mod engine_reads;
mod follow;
pub mod idempotency;
pub mod lane;
pub mod message;
pub mod metrics;
pub mod notice;
pub mod operator;
pub mod ports;
pub mod route;
pub mod schedule;
pub mod ticket;
pub mod trace;
pub mod view;
pub mod webhook;

pub use config::Policy;
pub use engine::{Deps, Engine};
pub use ports::Clock;
