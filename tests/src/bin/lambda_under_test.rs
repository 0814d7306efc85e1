//! The Lambda executable, built here so tests can spawn it. The same line as
//! `functions/lambda/src/main.rs`; `_HANDLER` picks the function.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    failover_lambda::run().await
}
