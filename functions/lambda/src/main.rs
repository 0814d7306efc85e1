//! The `bootstrap` of all three Lambda functions; `Handler` picks which.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    failover_lambda::run().await
}
