//! AWS adapters: DynamoDB ticket and idempotency stores, the SQS queue and
//! the SNS publisher (feature `aws`; local mode never compiles the SDK).
//!
//! Clients come from `aws-config`, so they honour the standard environment
//! (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS`/`_SNS` overrides used with LocalStack).
//! Their timeouts are set from the capture budget so that a store or queue
//! call can never outlive the request it serves: one operation (all retries
//! included) takes at most `CAPTURE_TIMEOUT_MS`.

mod dynamodb;
pub mod env;
mod sns;
mod sqs;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use failover_core::ports::StoreError;

pub use dynamodb::DynamoStore;
pub use sns::SnsPublisher;
pub use sqs::SqsQueue;

/// Loads the shared SDK configuration with timeouts bounded by `budget`.
/// Makes no network call (credentials are resolved on first use).
pub async fn sdk_config(budget: Duration) -> SdkConfig {
    let attempt = (budget / 2).max(Duration::from_millis(200));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(attempt.min(Duration::from_secs(1)))
        .operation_attempt_timeout(attempt)
        .operation_timeout(budget)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

/// Any SDK error, as an unavailable store (conditional failures are mapped
/// before this is reached).
fn unavailable<E: std::error::Error>(e: E) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
}
