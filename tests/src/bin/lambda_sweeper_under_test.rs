//! The `sweeper` Lambda binary, built here so tests can spawn it. The same
//! line as `functions/worker/src/bin/sweeper.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    failover_worker::lambda::run_sweeper().await
}
