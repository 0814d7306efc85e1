//! Black-box tests of the HTTP API: `spawn_app()` on port 0, a fresh data
//! dir, a mock backend and real HTTP, one file per concern.

mod browser;
mod cancel;
mod events;
mod failover;
mod idempotency;
mod input;
mod lanes;
mod notifications;
mod openapi;
mod routes;
mod status;
mod sync;
mod traces;
mod worker;
