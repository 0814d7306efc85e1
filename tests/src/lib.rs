//! Test support: the mock backend, the webhook receiver, `spawn_app()` and
//! the shared conformance suites of the ports.
//!
//! Everything here talks over real loopback sockets; nothing is mocked
//! inside the service under test.

pub mod aws;
pub mod chaos;
pub mod conformance;
pub mod events;
pub mod explore;
pub mod health_conformance;
pub mod lambda_runtime;
pub mod mock_backend;
pub mod operator_conformance;
pub mod otlp;
pub mod receiver;
pub mod spawn;
pub mod sse;
pub mod tool;
