//! AWS resources on the emulators, one fresh set per test.
//!
//! Tests create their own uniquely named table, queues and topic, so they
//! run in parallel and never see each other's data. The attributes are the
//! ones `template.yaml` deploys (key, TTL attribute, redrive policy); the
//! template test checks that they agree.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use failover_adapters::aws::env::{
    OVERDUE_DUE, OVERDUE_INDEX, OVERDUE_SHARD, TABLE_KEY, TABLE_TTL_ATTRIBUTE,
};
use failover_core::lane::Lane;

/// The redrive limit, as `template.yaml`'s `MaxReceiveCount` default (the
/// template test checks that they agree).
pub const MAX_RECEIVE_COUNT: u32 = 100;
/// The queue's default visibility timeout, as `template.yaml`'s.
pub const QUEUE_VISIBILITY_S: u32 = 540;

pub struct AwsEnv {
    pub sdk: SdkConfig,
    pub table: String,
    pub queue_url: String,
    pub dlq_url: String,
    /// The critical and bulk lanes' queues and dead-letter queues.
    pub lane_queues: Vec<(Lane, String, String)>,
    pub topic_arn: String,
    /// Where bodies too large for a table item go.
    pub body_bucket: String,
    /// The Secrets Manager secret holding `TEST_SECRET` (what the worker
    /// signs webhooks with).
    pub webhook_secret_id: String,
}

/// The SDK configuration for the emulators. Panics with instructions when
/// no emulator endpoint is configured: these tests never touch real AWS.
pub async fn sdk() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS tests need emulators on loopback: run infra/test-all, or start LocalStack \
         and set AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_DYNAMODB) to it (got {endpoint:?})"
    );
    failover_adapters::aws::sdk_config(Duration::from_secs(5)).await
}

/// A queue redriving to a dead-letter queue of its own, as the template
/// makes each lane's: their URLs.
async fn queue_pair(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create DLQ")
        .queue_url
        .expect("DLQ url");
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("DLQ attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("DLQ arn");
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}"#);
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            QUEUE_VISIBILITY_S.to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    (queue_url, dlq_url)
}

pub async fn fresh() -> AwsEnv {
    let sdk = sdk().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let table = format!("tickets-{suffix}");
    create_table(&sdk, &table).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = queue_pair(&sqs, &format!("requests-{suffix}")).await;
    let mut lane_queues = Vec::new();
    for lane in [Lane::Critical, Lane::Bulk] {
        let (url, dlq) = queue_pair(&sqs, &format!("{}-{suffix}", lane.as_str())).await;
        lane_queues.push((lane, url, dlq));
    }
    let topic_arn = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(format!("completions-{suffix}"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    let body_bucket = format!("bodies-{suffix}");
    failover_adapters::aws::S3Blobs::client(&sdk)
        .create_bucket()
        .bucket(&body_bucket)
        .send()
        .await
        .expect("create bucket");
    let webhook_secret_id = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("webhook-{suffix}"))
        .secret_string(crate::spawn::TEST_SECRET)
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn");
    AwsEnv {
        sdk,
        table,
        queue_url,
        dlq_url,
        lane_queues,
        topic_arn,
        body_bucket,
        webhook_secret_id,
    }
}

impl AwsEnv {
    /// The table's store, with the body bucket, as the functions build it.
    pub fn store(&self) -> failover_adapters::aws::DynamoStore {
        use failover_adapters::aws::{DynamoStore, S3Blobs};
        let blobs = S3Blobs::new(S3Blobs::client(&self.sdk), self.body_bucket.clone());
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.table.clone(),
            std::sync::Arc::new(failover_core::ports::SystemClock),
        )
        .with_blobs(std::sync::Arc::new(blobs))
    }
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("attribute")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

pub async fn create_table(sdk: &SdkConfig, table: &str) {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let overdue = GlobalSecondaryIndex::builder()
        .index_name(OVERDUE_INDEX)
        .key_schema(key(OVERDUE_SHARD, KeyType::Hash))
        .key_schema(key(OVERDUE_DUE, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes("purge_ms")
                .build(),
        )
        .build()
        .expect("index");
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(TABLE_KEY, ScalarAttributeType::S))
        .attribute_definitions(attribute(OVERDUE_SHARD, ScalarAttributeType::S))
        .attribute_definitions(attribute(OVERDUE_DUE, ScalarAttributeType::N))
        .key_schema(key(TABLE_KEY, KeyType::Hash))
        .global_secondary_indexes(overdue)
        .send()
        .await
        .expect("create table");
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TABLE_TTL_ATTRIBUTE)
                .build()
                .expect("ttl"),
        )
        .send()
        .await
        .expect("enable TTL");
}

/// DynamoDB, SQS and SNS as one back end for the fault exploration
/// ([`crate::explore`]), which takes every port from one value.
#[derive(Clone)]
pub struct AwsBackEnd {
    pub store: failover_adapters::aws::DynamoStore,
    pub queue: failover_adapters::aws::SqsQueue,
    pub topic: failover_adapters::aws::SnsPublisher,
}

impl AwsBackEnd {
    /// On this environment's resources, with `clock` for the store.
    pub fn new(env: &AwsEnv, clock: std::sync::Arc<dyn failover_core::Clock>) -> Self {
        use failover_adapters::aws::{DynamoStore, S3Blobs, SnsPublisher, SqsQueue};
        let blobs = S3Blobs::new(S3Blobs::client(&env.sdk), env.body_bucket.clone());
        Self {
            store: DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&env.sdk),
                env.table.clone(),
                clock,
            )
            .with_blobs(std::sync::Arc::new(blobs)),
            queue: env.lane_queues.iter().fold(
                SqsQueue::new(
                    aws_sdk_sqs::Client::new(&env.sdk),
                    env.queue_url.clone(),
                    Some(env.dlq_url.clone()),
                ),
                |q, (lane, url, dlq)| q.with_lane(*lane, url.clone(), Some(dlq.clone())),
            ),
            topic: SnsPublisher::new(aws_sdk_sns::Client::new(&env.sdk), env.topic_arn.clone()),
        }
    }
}

mod back_end {
    use std::time::Duration;

    use async_trait::async_trait;
    use failover_core::ports::{
        Delivery, EventPublisher, IdemRecord, IdempotencyStore, NotifyError, Priority, Queue,
        QueueError, QueueStats, StoreError, TicketStore, TopicEvent,
    };
    use failover_core::ticket::{Status, Ticket, TicketId};

    use super::AwsBackEnd;

    #[async_trait]
    impl TicketStore for AwsBackEnd {
        async fn create(&self, t: &Ticket) -> Result<(), StoreError> {
            self.store.create(t).await
        }
        async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
            TicketStore::get(&self.store, id).await
        }
        async fn update(&self, t: &Ticket, s: Status, v: u64) -> Result<(), StoreError> {
            self.store.update(t, s, v).await
        }
        async fn delete(&self, id: &TicketId, v: u64) -> Result<(), StoreError> {
            self.store.delete(id, v).await
        }
        async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
            self.store.overdue(before, limit).await
        }
        async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
            self.store.oldest_due().await
        }
    }

    #[async_trait]
    impl IdempotencyStore for AwsBackEnd {
        async fn insert(&self, r: &IdemRecord) -> Result<(), StoreError> {
            self.store.insert(r).await
        }
        async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
            IdempotencyStore::get(&self.store, key).await
        }
        async fn replace(&self, r: &IdemRecord, v: u64) -> Result<(), StoreError> {
            self.store.replace(r, v).await
        }
    }

    #[async_trait]
    impl Queue for AwsBackEnd {
        async fn send(
            &self,
            body: &str,
            priority: Priority,
            delay: Duration,
        ) -> Result<String, QueueError> {
            self.queue.send(body, priority, delay).await
        }
        async fn receive(
            &self,
            max: usize,
            visibility: Duration,
            wait: Duration,
        ) -> Result<Vec<Delivery>, QueueError> {
            self.queue.receive(max, visibility, wait).await
        }
        async fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
            self.queue.ack(d).await
        }
        async fn defer(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
            self.queue.defer(d, delay).await
        }
        async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
            self.queue.dead_letter(d, reason).await
        }
        async fn stats(&self) -> Result<QueueStats, QueueError> {
            self.queue.stats().await
        }
    }

    #[async_trait]
    impl EventPublisher for AwsBackEnd {
        async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError> {
            self.topic.publish(event).await
        }
    }
}
