//! The same suites the embedded adapters pass, on DynamoDB and SQS.

use std::sync::Arc;

use failover_adapters::aws::{DynamoStore, SqsQueue};
use failover_core::ports::{StoreError, SystemClock, TicketStore};
use failover_tests::aws::fresh;
use failover_tests::conformance;

#[tokio::test]
async fn dynamodb_ticket_store() {
    let env = fresh().await;
    conformance::ticket_store(Arc::new(env.store())).await;
}

/// Without the body bucket, a body past DynamoDB's item limit is refused
/// by the table: the suite's largest ticket really needs the claim check.
#[tokio::test]
async fn dynamodb_without_the_bucket_cannot_hold_the_largest_ticket() {
    let env = fresh().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&env.sdk),
        env.table,
        Arc::new(SystemClock),
    );
    let largest = conformance::largest_ticket();
    assert!(matches!(
        store.create(&largest).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn dynamodb_idempotency_store() {
    let env = fresh().await;
    conformance::idempotency_store(Arc::new(env.store())).await;
}

#[tokio::test]
async fn dynamodb_health_store() {
    let env = fresh().await;
    conformance::health_store(Arc::new(env.store())).await;
}

#[tokio::test]
async fn sqs_queue() {
    let env = fresh().await;
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&env.sdk),
        env.queue_url,
        Some(env.dlq_url),
    );
    conformance::queue(Arc::new(queue)).await;
}

/// With S3 failing (here: its bucket is gone), only a body over the inline
/// limit is refused, as `Unavailable` (the capture answers 503), and no item
/// is left pointing at nothing; small tickets are stored as ever.
#[tokio::test]
async fn with_s3_down_only_large_bodies_fail_and_nothing_dangles() {
    use failover_adapters::aws::{S3Blobs, INLINE_MAX};
    let env = fresh().await;
    let gone = S3Blobs::new(S3Blobs::client(&env.sdk), "no-such-bucket-failover");
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&env.sdk),
        env.table,
        Arc::new(SystemClock),
    )
    .with_blobs(Arc::new(gone));
    let mut large = conformance::sample_ticket();
    large.request.body = vec![b'x'; INLINE_MAX + 1];
    assert!(matches!(
        store.create(&large).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(TicketStore::get(&store, &large.id).await.unwrap(), None);
    let small = conformance::sample_ticket();
    store
        .create(&small)
        .await
        .expect("a small ticket needs no S3");
    assert_eq!(
        TicketStore::get(&store, &small.id).await.unwrap(),
        Some(small)
    );
}
