//! The sweeper Lambda function (scheduled): re-enqueues lost tickets.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    failover_worker::lambda::run_sweeper().await
}
