//! AWS adapters: DynamoDB ticket, idempotency and health stores (large
//! bodies in S3), the SQS queue and the SNS publisher (feature `aws`;
//! local mode never compiles the SDK).
//!
//! Clients come from `aws-config`, so they honour the standard environment
//! (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS`/`_SNS` overrides used with LocalStack).
//! Their timeouts are set from the capture budget so that a store or queue
//! call can never outlive the request it serves: one operation (all retries
//! included) takes at most `CAPTURE_TIMEOUT_MS`.
//!
//! TLS trusts root certificates compiled into the binary
//! (`webpki-root-certs`, Mozilla's set) instead of reading the system store:
//! on a cold start, reading and parsing `/etc/ssl/certs` cost ~14 ms, four
//! times the whole start of a minimal function (BENCHMARKS.md). With no
//! custom endpoint the SDK only talks to AWS, whose endpoints chain to the
//! Amazon Trust Services roots (Amazon Root CA 1-4, Starfield Services Root
//! G2), so only those are loaded; a custom `AWS_ENDPOINT_URL*` gets the
//! whole set.

mod blobs;
mod drills;
mod dynamodb;
pub mod env;
mod health;
mod health_view;
mod parts;
mod scan;
mod sns;
mod sqs;
mod sqs_dead;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use failover_core::ports::StoreError;

pub use blobs::S3Blobs;
pub use dynamodb::DynamoStore;
pub use health::{budget, record_bytes, GroupHealth};
pub use health_view::{view_bytes, VIEW_COPIES};
pub use parts::INLINE_MAX;
pub use sns::SnsPublisher;
pub use sqs::{priority_of, SqsQueue};

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
        .http_client(https_client())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

/// The SDK's HTTPS client, trusting the compiled-in Mozilla roots.
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    use base64::Engine as _;
    let custom = std::env::vars_os().any(|(k, _)| {
        k.to_str()
            .is_some_and(|k| k.starts_with("AWS_ENDPOINT_URL"))
    });
    let mut store = tls::TrustStore::empty().with_native_roots(false);
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| der.as_ref())
        .filter(|der| custom || is_aws_root(der));
    for der in roots {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        store = store.with_pem_certificate(format!(
            "-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"
        ));
    }
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::AwsLc,
    ));
    match tls::TlsContext::builder().with_trust_store(store).build() {
        Ok(ctx) => builder.tls_context(ctx).build_https(),
        // Cannot happen with well-formed roots; fall back to the defaults.
        Err(e) => {
            tracing::warn!(error = %e, "compiled-in roots refused; using the system store");
            builder.build_https()
        }
    }
}

/// Whether a root certificate is one AWS endpoints chain to (its subject
/// names Amazon Trust Services' roots; the DER holds the name as text).
fn is_aws_root(der: &[u8]) -> bool {
    let names: [&[u8]; 2] = [
        b"Amazon Root CA ",
        b"Starfield Services Root Certificate Authority - G2",
    ];
    names.iter().any(|n| der.windows(n.len()).any(|w| w == *n))
}

/// Any SDK error, as an unavailable store (conditional failures are mapped
/// before this is reached).
fn unavailable<E: std::error::Error>(e: E) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_aws_roots_are_in_the_compiled_in_set() {
        let aws: Vec<_> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter(|d| super::is_aws_root(d.as_ref()))
            .collect();
        // Amazon Root CA 1-4 and Starfield Services Root G2.
        assert_eq!(aws.len(), 5);
    }
}
