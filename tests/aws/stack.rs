//! One AWS-mode deployment on the emulators: fresh table, queues and topic,
//! the real `api` and `worker` binaries behind a loopback Lambda Runtime
//! API, a mock backend and a webhook receiver.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use failover_adapters::aws::DynamoStore;
use failover_core::ports::{SystemClock, TicketStore};
use failover_core::ticket::Ticket;
use failover_tests::aws::{fresh, AwsEnv};
use failover_tests::events;
use failover_tests::lambda_runtime::LambdaHarness;
use failover_tests::mock_backend::{Behaviour, MockBackend};
use failover_tests::receiver::Receiver;
use failover_tests::spawn::TEST_SECRET;
use serde_json::Value;

pub struct Stack {
    pub env: AwsEnv,
    pub backend: MockBackend,
    pub hooks: Receiver,
    pub api: LambdaHarness,
    pub worker: LambdaHarness,
    pub sqs: aws_sdk_sqs::Client,
    pub store: DynamoStore,
    pub queue_arn: String,
}

/// The functions' environment: exactly what the SAM template sets.
pub fn function_env(env: &AwsEnv, backend: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TABLE_NAME", env.table.clone()),
        ("QUEUE_URL", env.queue_url.clone()),
        ("DLQ_URL", env.dlq_url.clone()),
        ("TOPIC_ARN", env.topic_arn.clone()),
        ("BACKEND_URL", backend.to_string()),
        ("SYNC_DEADLINE_MS", "300".into()),
        ("WORKER_DEADLINE_MS", "1000".into()),
        ("CAPTURE_TIMEOUT_MS", "2000".into()),
        ("RETRY_BASE_MS", "1000".into()),
        ("BREAKER_MIN_CALLS", "1000".into()),
        ("WEBHOOK_SECRET", TEST_SECRET.into()),
        ("CALLBACK_ALLOW_LOOPBACK", "true".into()),
    ]
}

pub const API_BIN: &str = env!("CARGO_BIN_EXE_lambda-api-under-test");
pub const WORKER_BIN: &str = env!("CARGO_BIN_EXE_lambda-worker-under-test");
pub const SWEEPER_BIN: &str = env!("CARGO_BIN_EXE_lambda-sweeper-under-test");

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// Extra environment for the api and the worker function.
    pub async fn start_with(api_extra: &[(&str, String)], worker_extra: &[(&str, String)]) -> Self {
        let env = fresh().await;
        let backend = MockBackend::start(Behaviour::ok(r#"{"ok":true}"#)).await;
        let hooks = Receiver::start().await;
        let base = function_env(&env, &backend.url);
        let mut api = LambdaHarness::start().await;
        api.spawn(API_BIN, "api", &[base.as_slice(), api_extra].concat());
        let mut worker = LambdaHarness::start().await;
        worker.spawn(
            WORKER_BIN,
            "worker",
            &[base.as_slice(), worker_extra].concat(),
        );
        let sqs = aws_sdk_sqs::Client::new(&env.sdk);
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&env.sdk),
            env.table.clone(),
            std::sync::Arc::new(SystemClock),
        );
        let queue_arn = queue_arn(&sqs, &env.queue_url).await;
        Self {
            env,
            backend,
            hooks,
            api,
            worker,
            sqs,
            store,
            queue_arn,
        }
    }

    /// `POST /requests` through the api function; the Lambda proxy answer.
    pub async fn post(&self, headers: &[(&str, &str)], body: &str) -> Value {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        let event = events::http_api("POST", "/requests", "", &h, Some(body));
        self.api
            .invoke(event, Duration::from_secs(10))
            .await
            .expect("api answered")
    }

    pub async fn get(&self, path: &str, query: &str) -> Value {
        let event = events::http_api("GET", path, query, &[], None);
        self.api
            .invoke(event, Duration::from_secs(30))
            .await
            .expect("api answered")
    }

    /// Receives up to 10 messages, as the event source mapping would.
    pub async fn receive(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.env.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    /// Hands these messages to the worker function; its batch response.
    pub async fn work(&self, messages: &[aws_sdk_sqs::types::Message]) -> Value {
        let event = events::sqs(messages, &self.queue_arn);
        self.worker
            .invoke(event, Duration::from_secs(30))
            .await
            .expect("worker answered")
    }

    pub async fn ticket(&self, id: &str) -> Ticket {
        self.store
            .get(&id.parse().expect("ticket id"))
            .await
            .expect("read ticket")
            .expect("ticket exists")
    }
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

/// The JSON body of a Lambda proxy answer.
pub fn body(resp: &Value) -> Value {
    serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Failed message ids of a batch response.
pub fn failures(batch: &Value) -> Vec<String> {
    batch["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
