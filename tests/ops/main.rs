//! The operator's tool, `failover`, run as a process against a running
//! local gateway's data directory (`local.rs`, `drills.rs`) and against
//! the AWS table and queues on the emulators (`aws.rs`): output, JSON
//! shapes, exit codes and refusals.

mod aws;
mod breakers;
mod drills;
mod local;

pub use failover_tests::tool::Run;

/// Runs the tool with these environment variables and arguments.
pub async fn failover(env: &[(&str, String)], args: &[&str]) -> Run {
    failover_tests::tool::run(env!("CARGO_BIN_EXE_failover-under-test"), env, args).await
}
