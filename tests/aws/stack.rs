//! One AWS-mode deployment on the emulators: fresh table, queues and topic,
//! the real `api` and `worker` functions behind a loopback Lambda Runtime
//! API, a mock backend and a webhook receiver.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use failover_adapters::aws::DynamoStore;
use failover_core::lane::Lane;
use failover_core::ports::{SystemClock, TicketStore};
use failover_core::ticket::{CapturedRequest, Reason, Ticket, TicketId};
use failover_core::Clock;
use failover_lambda::Handler;
use failover_tests::aws::{fresh, AwsEnv};
use failover_tests::events;
use failover_tests::lambda_runtime::LambdaHarness;
use failover_tests::mock_backend::{Behaviour, MockBackend};
use failover_tests::receiver::Receiver;
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
    pub functions: Functions,
}

/// The functions' environment: exactly what the SAM template sets.
pub fn function_env(env: &AwsEnv, backend: &str) -> Vec<(&'static str, String)> {
    let lane = |l: Lane| {
        let (_, url, dlq) = env
            .lane_queues
            .iter()
            .find(|q| q.0 == l)
            .expect("lane queue");
        (url.clone(), dlq.clone())
    };
    let ((critical, critical_dlq), (bulk, bulk_dlq)) = (lane(Lane::Critical), lane(Lane::Bulk));
    vec![
        ("QUEUE_URL_CRITICAL", critical),
        ("DLQ_URL_CRITICAL", critical_dlq),
        ("QUEUE_URL_BULK", bulk),
        ("DLQ_URL_BULK", bulk_dlq),
        ("TABLE_NAME", env.table.clone()),
        ("BODY_BUCKET", env.body_bucket.clone()),
        ("QUEUE_URL", env.queue_url.clone()),
        ("DLQ_URL", env.dlq_url.clone()),
        ("TOPIC_ARN", env.topic_arn.clone()),
        ("BACKEND_URL", backend.to_string()),
        ("SYNC_DEADLINE_MS", "300".into()),
        ("WORKER_DEADLINE_MS", "1000".into()),
        ("CAPTURE_TIMEOUT_MS", "2000".into()),
        ("RETRY_BASE_MS", "1000".into()),
        ("BREAKER_MIN_CALLS", "1000".into()),
        ("WEBHOOK_SECRET_ID", env.webhook_secret_id.clone()),
        ("CALLBACK_ALLOW_LOOPBACK", "true".into()),
    ]
}

/// The host build of the functions' executable.
const LAMBDA_BIN: &str = env!("CARGO_BIN_EXE_lambda-under-test");

/// The functions' executables, and what runs them.
#[derive(Debug, Clone)]
pub struct Functions {
    pub api: String,
    pub worker: String,
    pub sweeper: String,
    pub events: String,
    /// An emulator for another architecture (qemu-user), or empty.
    pub runner: Vec<String>,
}

impl Functions {
    /// This package's host build (one executable for all four).
    pub fn under_test() -> Self {
        Self {
            api: LAMBDA_BIN.into(),
            worker: LAMBDA_BIN.into(),
            sweeper: LAMBDA_BIN.into(),
            events: LAMBDA_BIN.into(),
            runner: Vec::new(),
        }
    }

    pub fn binary(&self, handler: Handler) -> &str {
        match handler {
            Handler::Api => &self.api,
            Handler::Worker => &self.worker,
            Handler::Sweeper => &self.sweeper,
            Handler::Events => &self.events,
        }
    }

    /// A Runtime API on loopback with the function `handler` polling it.
    pub async fn start(&self, handler: Handler, env: &[(&str, String)]) -> LambdaHarness {
        let mut harness = LambdaHarness::start().await;
        harness.spawn_via(&self.runner, self.binary(handler), handler.name(), env);
        harness
    }
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// Extra environment for the api and the worker function.
    pub async fn start_with(api_extra: &[(&str, String)], worker_extra: &[(&str, String)]) -> Self {
        Self::start_on(Functions::under_test(), api_extra, worker_extra).await
    }

    /// The stack on these function executables.
    pub async fn start_on(
        functions: Functions,
        api_extra: &[(&str, String)],
        worker_extra: &[(&str, String)],
    ) -> Self {
        let env = fresh().await;
        let backend = MockBackend::start(Behaviour::ok(r#"{"ok":true}"#)).await;
        let hooks = Receiver::start().await;
        let base = function_env(&env, &backend.url);
        let api = functions
            .start(Handler::Api, &[base.as_slice(), api_extra].concat())
            .await;
        let worker = functions
            .start(Handler::Worker, &[base.as_slice(), worker_extra].concat())
            .await;
        let sqs = aws_sdk_sqs::Client::new(&env.sdk);
        let store = env.store();
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
            functions,
        }
    }

    /// The scheduled sweeper function of this stack, started.
    pub async fn sweeper(&self) -> LambdaHarness {
        let env = function_env(&self.env, &self.backend.url);
        self.functions.start(Handler::Sweeper, &env).await
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

    /// `DELETE path` through the api function.
    pub async fn delete(&self, path: &str) -> Value {
        let event = events::http_api("DELETE", path, "", &[], None);
        self.api
            .invoke(event, Duration::from_secs(10))
            .await
            .expect("api answered")
    }

    /// Receives up to 10 messages, as the event source mapping would.
    pub async fn receive(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.receive_from(&self.env.queue_url.clone()).await
    }

    /// The same from the queue at `url`.
    pub async fn receive_from(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(url)
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
        self.work_on(messages, &self.queue_arn).await
    }

    /// The same, as the mapping of the queue `queue_arn`.
    pub async fn work_on(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        queue_arn: &str,
    ) -> Value {
        let event = events::sqs(messages, queue_arn);
        self.worker
            .invoke(event, Duration::from_secs(30))
            .await
            .expect("worker answered")
    }

    /// A ticket due 20 minutes ago whose message was lost after a worker
    /// had seen it: the sweeper's to find.
    pub async fn lost_ticket(&self) -> String {
        let created = SystemClock.now_ms() - 20 * 60_000;
        let req = CapturedRequest::new(r#"{"amount": 8}"#, "application/json", "r");
        // A worker deferred it once; then its message was lost.
        let orphan = Ticket::new(TicketId::new(), Reason::Timeout, req, created, 3_600_000)
            .postpone(created, created)
            .expect("a queued ticket can be deferred");
        self.store.create(&orphan).await.expect("write the ticket");
        orphan.id.to_string()
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
