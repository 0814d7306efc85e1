//! The same suites the embedded adapters pass, on DynamoDB and SQS.

use std::sync::Arc;

use failover_adapters::aws::{DynamoStore, SqsQueue};
use failover_core::ports::SystemClock;
use failover_tests::aws::fresh;
use failover_tests::conformance;

#[tokio::test]
async fn dynamodb_ticket_store() {
    let env = fresh().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&env.sdk),
        env.table,
        Arc::new(SystemClock),
    );
    conformance::ticket_store(Arc::new(store)).await;
}

#[tokio::test]
async fn dynamodb_idempotency_store() {
    let env = fresh().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&env.sdk),
        env.table,
        Arc::new(SystemClock),
    );
    conformance::idempotency_store(Arc::new(store)).await;
}

#[tokio::test]
async fn dynamodb_health_store() {
    let env = fresh().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&env.sdk),
        env.table,
        Arc::new(SystemClock),
    );
    conformance::health_store(Arc::new(store)).await;
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
