//! The `api` Lambda binary, built here so tests can spawn it. The same line
//! as `functions/api/src/main.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    failover_api::lambda::run().await
}
