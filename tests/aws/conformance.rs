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
    conformance::health_store(Arc::new(env.store().health_reading("g-1", 3))).await;
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

#[tokio::test]
async fn dynamodb_ticket_scan() {
    let env = fresh().await;
    failover_tests::operator_conformance::ticket_scan(&env.store()).await;
}

#[tokio::test]
async fn dynamodb_drills() {
    let env = fresh().await;
    failover_tests::operator_conformance::drills(&env.store()).await;
}

/// The bulk lane's own dead-letter queue, as deployed.
#[tokio::test]
async fn sqs_dead_letters() {
    let env = fresh().await;
    let sqs = aws_sdk_sqs::Client::new(&env.sdk);
    let queue = env.lane_queues.iter().fold(
        SqsQueue::new(sqs, env.queue_url.clone(), Some(env.dlq_url.clone())),
        |q, (lane, url, dlq)| q.with_lane(*lane, url.clone(), Some(dlq.clone())),
    );
    failover_tests::operator_conformance::dead_letters(&queue).await;
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

/// The record and its views at their largest (a 280-byte group label, the
/// template's longest window, every number at its widest) cost no more
/// write and read units than the adapter declares, which its report budget
/// and the fleet simulation rely on; and not much less (the budget would
/// waste the record's capacity).
#[tokio::test]
async fn dynamodb_health_items_cost_what_the_adapter_declares() {
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
    use failover_adapters::aws::{record_bytes, view_bytes};
    use failover_core::breaker::rules::{BreakerState, Bucket, Mode};
    use failover_core::breaker::store::View;
    use failover_core::breaker::HealthStore;

    const WINDOW_S: i64 = 120;
    let env = fresh().await;
    let group = "g".repeat(280);
    let health = env.store().health_reading(&group, 0);
    let widest = BreakerState {
        mode: Mode::HalfOpen {
            probe_since_ms: Some(i64::MIN),
            healthy: u32::MAX,
        },
        open_period_ms: u64::MAX,
        window_from_s: i64::MIN,
        closed_at_ms: Some(i64::MIN),
        transitions: u64::MAX - 1,
        version: 1,
    };
    health.replace(&widest).await.expect("state");
    let second = 9_999_999_999 - WINDOW_S;
    let counts: Vec<Bucket> = (0..WINDOW_S)
        .map(|i| Bucket {
            second: second + i,
            calls: u32::MAX / 2,
            errors: u32::MAX / 2,
            slow: u32::MAX / 2,
            busy_ms: u64::MAX / 2,
            refreshes: u32::MAX / 2,
        })
        .collect();
    let record = health.exchange(&counts, WINDOW_S).await.expect("counts");
    assert_eq!(record.window.len(), WINDOW_S as usize);
    health
        .publish_view(&View {
            record,
            taken_ms: i64::MIN,
        })
        .await
        .expect("publish");

    let client = aws_sdk_dynamodb::Client::new(&env.sdk);
    let units = |c: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>| {
        c.and_then(|c| c.capacity_units).expect("consumed capacity")
    };
    let key = |k: String| AttributeValue::S(k);
    let write = client
        .update_item()
        .table_name(&env.table)
        .key("pk", key(format!("H#breaker#{group}")))
        .update_expression("ADD seq :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("write");
    let declared = record_bytes(WINDOW_S).div_ceil(1024) as f64;
    let used = units(write.consumed_capacity());
    println!("record write: {used} of {declared}");
    assert!(
        used <= declared && used >= declared - 1.0,
        "record: {used} of {declared}"
    );

    let view_key = key(format!("H#view#0#{group}"));
    let read = client
        .get_item()
        .table_name(&env.table)
        .key("pk", view_key.clone())
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("read");
    let item = read.item().cloned().expect("the view");
    let declared = 0.5 * view_bytes(WINDOW_S).div_ceil(4096) as f64;
    let used = units(read.consumed_capacity());
    println!("view read: {used} of {declared}");
    assert!(used <= declared, "view read: {used} of {declared}");
    let rewrite = client
        .put_item()
        .table_name(&env.table)
        .set_item(Some(item))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .expect("rewrite");
    let declared = view_bytes(WINDOW_S).div_ceil(1024) as f64;
    let used = units(rewrite.consumed_capacity());
    println!("view write: {used} of {declared}");
    assert!(
        used <= declared && used >= declared - 2.0,
        "view: {used} of {declared}"
    );
}
