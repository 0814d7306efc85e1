//! AWS mode's wiring from the environment: what both Lambda functions read
//! besides the shared policy.

use std::sync::Arc;

use failover_core::breaker::{Breaker, HealthGate, HealthGates};
use failover_core::callback::CallbackRules;
use failover_core::config::ConfigError;
use failover_core::lane::Lane;
use failover_core::metrics::Emf;
use failover_core::ports::SystemClock;
use failover_core::route::RouteTable;
use failover_core::{Deps, Policy};

use super::{sdk_config, DynamoStore, S3Blobs, SnsPublisher, SqsQueue};
use crate::http_backend::HttpBackend;
use crate::webhook_sender::HttpWebhookSender;

/// The table's key attribute and TTL attribute (the template and the
/// emulator bootstrap must use the same).
pub const TABLE_KEY: &str = "pk";
pub const TABLE_TTL_ATTRIBUTE: &str = "ttl";
/// The sparse index of non-terminal tickets by due time (the sweeper's).
pub const OVERDUE_INDEX: &str = "overdue";
pub const OVERDUE_SHARD: &str = "due_shard";
pub const OVERDUE_DUE: &str = "due_ms";
/// Shards of that index, so that no single partition takes every write.
pub const OVERDUE_SHARDS: u32 = 8;

/// The CloudWatch namespace of the EMF metrics (alarms in the template use it).
pub const METRICS_NAMESPACE: &str = "FailoverGateway";

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table: String,
    /// `BODY_BUCKET`: where bodies too large for a table item go.
    pub body_bucket: String,
    /// The `normal` lane's queue (and every lane's without its own).
    pub queue_url: String,
    /// Where poison messages go (the worker needs it).
    pub dlq_url: Option<String>,
    /// `QUEUE_URL_CRITICAL`, `DLQ_URL_CRITICAL`, `QUEUE_URL_BULK`,
    /// `DLQ_URL_BULK`: the other lanes' queues, if they have their own.
    pub lane_queues: Vec<(Lane, String, Option<String>)>,
    /// Where terminal events go (the worker needs it).
    pub topic_arn: Option<String>,
    /// `BACKEND_URL`: where `POST /requests` goes without a routes file.
    pub backend_url: String,
    /// `ROUTES_FILE`: the API's routes (TOML), read at cold start (the
    /// template ships it in a layer, at `/opt/...`).
    pub routes_file: Option<String>,
    /// `WORKER_CONCURRENCY` (default 10, at most 1000): records of one SQS
    /// batch handled at once.
    pub worker_concurrency: usize,
    /// `WEBHOOK_SECRET_ID`: the Secrets Manager secret that signs webhooks.
    /// Only its id is in the environment; the worker, the one function
    /// allowed to, reads the value at start ([`webhook_secret`]).
    pub webhook_secret_id: Option<String>,
}

fn required(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError {
            name,
            value: String::new(),
            problem: "must be set".into(),
        })
}

fn concurrency(get: &dyn Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    const NAME: &str = "WORKER_CONCURRENCY";
    let Some(value) = get(NAME).filter(|v| !v.trim().is_empty()) else {
        return Ok(10);
    };
    value
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or(ConfigError {
            name: NAME,
            value,
            problem: "must be a whole number from 1 to 1000".into(),
        })
}

impl AwsSettings {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            table: required(get, "TABLE_NAME")?,
            body_bucket: required(get, "BODY_BUCKET")?,
            queue_url: required(get, "QUEUE_URL")?,
            dlq_url: get("DLQ_URL").filter(|v| !v.is_empty()),
            lane_queues: [(Lane::Critical, "CRITICAL"), (Lane::Bulk, "BULK")]
                .into_iter()
                .filter_map(|(lane, name)| {
                    let dlq = get(&format!("DLQ_URL_{name}")).filter(|v| !v.is_empty());
                    let url = get(&format!("QUEUE_URL_{name}")).filter(|v| !v.is_empty())?;
                    Some((lane, url, dlq))
                })
                .collect(),
            topic_arn: get("TOPIC_ARN").filter(|v| !v.is_empty()),
            backend_url: match get("ROUTES_FILE").filter(|v| !v.trim().is_empty()) {
                Some(_) => get("BACKEND_URL").unwrap_or_default(),
                None => required(get, "BACKEND_URL")?,
            },
            routes_file: get("ROUTES_FILE").filter(|v| !v.trim().is_empty()),
            worker_concurrency: concurrency(get)?,
            webhook_secret_id: get("WEBHOOK_SECRET_ID").filter(|v| !v.trim().is_empty()),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

/// Every port of AWS mode, built once per Lambda instance (no network call).
pub struct AwsPorts {
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsQueue>,
    pub topic: Option<Arc<SnsPublisher>>,
    pub deps: Deps,
    pub webhooks: Arc<HttpWebhookSender>,
}

/// `service` names the function (`api` or `worker`) in the EMF metrics.
pub async fn ports(
    settings: &AwsSettings,
    policy: &Policy,
    service: &str,
) -> Result<AwsPorts, String> {
    let sdk = sdk_config(policy.capture_timeout).await;
    let clock = Arc::new(SystemClock);
    let blobs = S3Blobs::new(S3Blobs::client(&sdk), settings.body_bucket.clone());
    let store = Arc::new(
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.table.clone(),
            clock.clone(),
        )
        .with_blobs(Arc::new(blobs)),
    );
    let sqs = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        settings.queue_url.clone(),
        settings.dlq_url.clone(),
    );
    let queue = Arc::new(
        settings
            .lane_queues
            .iter()
            .fold(sqs, |q, (lane, url, dlq)| {
                q.with_lane(*lane, url.clone(), dlq.clone())
            }),
    );
    let topic = settings.topic_arn.as_ref().map(|arn| {
        Arc::new(SnsPublisher::new(
            aws_sdk_sns::Client::new(&sdk),
            arn.clone(),
        ))
    });
    let rules = CallbackRules {
        allow_private: policy.allow_private_callbacks,
        allow_loopback: policy.allow_loopback_callbacks,
    };
    let metrics: Arc<dyn failover_core::metrics::Metrics> = Arc::new(Emf {
        namespace: METRICS_NAMESPACE.into(),
        service: service.into(),
    });
    let routes = routes(settings, policy)?;
    // A fleet-wide breaker item per group (`H#breaker` without a file).
    let health = HealthGates::new(&routes, |group, policy| {
        let label = routes.group_label(group);
        let item = Arc::new(store.health(label));
        let shared = Breaker::shared(policy, item, clock.clone(), policy.health_cache);
        Arc::new(shared.with_metrics(metrics.clone()).for_group(label)) as Arc<dyn HealthGate>
    });
    let deps = Deps {
        backend: Arc::new(HttpBackend::new(policy.max_answer_bytes)?),
        tickets: store.clone(),
        idempotency: store.clone(),
        queue: queue.clone(),
        health: Arc::new(health),
        clock,
        metrics,
        routes: Arc::new(routes),
        tracer: crate::otlp::tracer(&|k| std::env::var(k).ok())?,
    };
    Ok(AwsPorts {
        store,
        queue,
        topic,
        deps,
        webhooks: Arc::new(HttpWebhookSender::new(rules)?),
    })
}

/// The routes: `ROUTES_FILE` if set (a mistake stops the cold start with
/// `file:line: reason`), else `POST /requests` to `BACKEND_URL`.
fn routes(settings: &AwsSettings, policy: &Policy) -> Result<RouteTable, String> {
    match &settings.routes_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("ROUTES_FILE {path}: cannot read it: {e}"))?;
            RouteTable::parse(&text, path, policy).map_err(|e| e.to_string())
        }
        None => RouteTable::single(&settings.backend_url, Arc::new(policy.clone()))
            .map_err(|e| e.to_string()),
    }
}

/// The webhook signing secret, read from Secrets Manager (once, at start),
/// unless `WEBHOOK_SECRET` itself is set (development). `None` without
/// either: callbacks are then refused by the API.
pub async fn webhook_secret(
    settings: &AwsSettings,
    policy: &Policy,
) -> Result<Option<failover_core::webhook::WebhookSecret>, String> {
    if policy.webhook_secret.is_some() {
        return Ok(policy.webhook_secret.clone());
    }
    let Some(id) = &settings.webhook_secret_id else {
        return Ok(None);
    };
    let sdk = sdk_config(policy.capture_timeout * 2).await;
    let value = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading the webhook secret {id}: {}",
                e.into_service_error()
            )
        })?;
    let text = value
        .secret_string()
        .ok_or(format!("the webhook secret {id} has no string value"))?;
    failover_core::webhook::WebhookSecret::parse(text.trim())
        .map(Some)
        .map_err(|e| format!("the webhook secret {id}: {e}"))
}

/// JSON logs for CloudWatch, filtered by `RUST_LOG`; every line carries the
/// fields of its spans (the ticket id among them).
pub fn init_json_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &[(&str, &str)]) -> Result<AwsSettings, ConfigError> {
        let vars: Vec<(String, String)> = [
            ("TABLE_NAME", "t"),
            ("BODY_BUCKET", "b"),
            ("QUEUE_URL", "http://127.0.0.1:4566/q"),
            ("BACKEND_URL", "http://127.0.0.1:9/b"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AwsSettings::from_lookup(&|name| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn worker_concurrency_is_read_and_a_bad_value_is_named() {
        assert_eq!(settings(&[]).unwrap().worker_concurrency, 10);
        let read = settings(&[("WORKER_CONCURRENCY", "4")]).unwrap();
        assert_eq!(read.worker_concurrency, 4);
        for bad in ["0", "ten", "-1", "1001"] {
            let e = settings(&[("WORKER_CONCURRENCY", bad)]).unwrap_err();
            assert_eq!((e.name, e.value.as_str()), ("WORKER_CONCURRENCY", bad));
        }
    }
}
