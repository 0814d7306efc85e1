//! AWS mode for the worker: the SQS-triggered Lambda function, and the
//! scheduled sweeper.
//!
//! Each record of the batch goes through the same [`Worker::handle`] as in
//! local mode, at most `WORKER_CONCURRENCY` (default 10) at once, and only
//! while the invocation has time left. The answer is an `SqsBatchResponse`
//! whose `batchItemFailures` list exactly the messages that must come back:
//! a retry (its visibility was first set to the backoff delay, so it returns
//! when due) or a record that could not finish in time. Acknowledged,
//! requeued (a delayed copy was sent) and dead-lettered records are left
//! out, and Lambda deletes them.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use failover_adapters::aws::env::{init_json_tracing, ports, webhook_secret, AwsSettings};
use failover_adapters::aws::priority_of;
use failover_core::ports::Delivery;
use failover_core::Policy;
use futures::StreamExt;
use lambda_runtime::{service_fn, Error, LambdaEvent};

use failover_worker::{Disposition, Notifiers, Worker};

/// Time kept back at the end of an invocation to report the batch.
const REPORT_MARGIN: Duration = Duration::from_millis(500);

fn delivery(m: SqsMessage) -> Delivery {
    let custom = |name: &str| {
        m.message_attributes
            .get(name)
            .and_then(|a| a.string_value.as_deref())
    };
    let priority = priority_of(
        custom("lane"),
        custom("since_ms"),
        m.attributes.get("SentTimestamp").map(String::as_str),
    );
    Delivery {
        priority,
        receive_count: m
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        message_id: m.message_id.unwrap_or_default(),
        receipt: m.receipt_handle.unwrap_or_default(),
        body: m.body.unwrap_or_default(),
    }
}

/// Handles a batch; `time_left` is what remains of the invocation.
pub async fn handle_batch(
    worker: &Worker,
    event: SqsEvent,
    time_left: Duration,
    concurrency: usize,
) -> SqsBatchResponse {
    let budget = time_left.saturating_sub(REPORT_MARGIN);
    let failures: Vec<String> = futures::stream::iter(event.records.into_iter().map(delivery))
        .map(|d| async move {
            let handled = tokio::time::timeout(budget, worker.handle(&d)).await;
            let must_return = match handled {
                Ok(Disposition::Ack) => false,
                Ok(Disposition::DeadLetter(reason)) => {
                    !worker.settle(&d, Disposition::DeadLetter(reason)).await
                }
                Ok(retry @ Disposition::Retry(_)) => {
                    // Set the delay, then report it so Lambda keeps it.
                    worker.settle(&d, retry).await;
                    true
                }
                // Copy sent (and this one deleted): done; else keep it.
                Ok(requeue @ Disposition::Requeue(_)) => !worker.settle(&d, requeue).await,
                Err(_) => {
                    tracing::warn!(message_id = %d.message_id, "invocation ran out of time");
                    true
                }
            };
            must_return.then_some(d.message_id)
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    // The process may be frozen once this returns: spans go now.
    worker.flush_traces().await;
    let mut response = SqsBatchResponse::default();
    for id in failures {
        response.add_failure(id);
    }
    response
}

fn time_left(deadline_ms: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Duration::from_millis(deadline_ms.saturating_sub(now))
}

/// The worker over AWS ports, built once per instance. Only the `worker`
/// signs webhooks, so only it reads the secret (its one network call at
/// start, and the only function allowed to).
async fn aws_worker(service: &str) -> Result<(Arc<Worker>, AwsSettings), Error> {
    init_json_tracing();
    let mut policy = Policy::from_env(Policy::default())?;
    let settings = AwsSettings::from_env()?;
    if service == "worker" {
        policy.webhook_secret = webhook_secret(&settings, &policy).await?;
    }
    let policy = Arc::new(policy);
    let ports = ports(&settings, &policy, service).await?;
    let topic = ports.topic.ok_or("TOPIC_ARN must be set for the worker")?;
    let notifiers = Notifiers {
        topic,
        webhooks: ports.webhooks,
    };
    Ok((
        Arc::new(Worker::new(policy, ports.deps, notifiers)),
        settings,
    ))
}

/// The `worker` function: SQS batches.
pub async fn run() -> Result<(), Error> {
    let (worker, settings) = aws_worker("worker").await?;
    let concurrency = settings.worker_concurrency;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            let left = time_left(event.context.deadline);
            Ok::<_, Error>(handle_batch(&worker, event.payload, left, concurrency).await)
        }
    }))
    .await
}

/// The `sweeper` function: on a schedule, re-enqueues tickets whose message
/// was lost ([`failover_worker::sweeper`]). Answers `{"reenqueued": n}`.
pub async fn run_sweeper() -> Result<(), Error> {
    let (worker, _) = aws_worker("sweeper").await?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let worker = worker.clone();
        async move {
            let n = worker.sweep(failover_worker::sweeper::GRACE).await?;
            Ok::<_, Error>(serde_json::json!({ "reenqueued": n }))
        }
    }))
    .await
}
