//! The API Lambda function: the same router as local mode, on `lambda_http`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    failover_api::lambda::run().await
}
