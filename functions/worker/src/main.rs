//! The worker Lambda function: SQS batches through the same worker as
//! local mode.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    failover_worker::lambda::run().await
}
