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
