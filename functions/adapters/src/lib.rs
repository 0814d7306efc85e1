//! # failover-adapters
//!
//! Implementations of the core's ports that are not AWS-specific:
//!
//! - [`sqlite`]: the embedded durable store of local mode (tickets, queue,
//!   idempotency records, publication log) in one SQLite file;
//! - [`memory`]: the same ports in memory, for paused-time tests;
//! - [`http_backend`]: the protected backend over HTTP;
//! - [`webhook_sender`]: signed webhook delivery with an SSRF guard;
//! - [`fault`]: a wrapper that makes any store or queue fail on demand, for
//!   the tests of the paths that only run in emergencies.
//!
//! Adapters know nothing of HTTP routing; every store and queue here passes
//! the shared conformance suites in `tests/conformance`.

pub mod fault;
pub mod http_backend;
pub mod memory;
pub mod otlp;
pub mod sqlite;
pub mod webhook_sender;

#[cfg(feature = "aws")]
pub mod aws;
