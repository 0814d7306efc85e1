//! # failover-worker
//!
//! The background half of the pattern: take a queued ticket, claim it with a
//! conditional write, call the backend under `WORKER_DEADLINE_MS`, retry with
//! exponential backoff and jitter up to `MAX_ATTEMPTS`, then notify.
//!
//! [`Worker::handle`] decides what happens to one delivery ([`process`]);
//! [`Worker::run`] is local mode's loop over the embedded queue. The Lambda
//! function (AWS mode) calls the same `handle` for each SQS record.

mod lanes;
pub mod notify;
pub mod process;
pub mod sweeper;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_core::drain::DrainLimiter;
use failover_core::ports::{Delivery, EventPublisher, LaneStats, QueueError, WebhookSender};
use failover_core::{Deps, Policy};
use tokio::sync::Semaphore;

pub use process::Disposition;

/// Where completions go.
#[derive(Clone)]
pub struct Notifiers {
    pub topic: Arc<dyn EventPublisher>,
    pub webhooks: Arc<dyn WebhookSender>,
}

pub struct Worker {
    policy: Arc<Policy>,
    deps: Deps,
    notifiers: Notifiers,
    /// Spaces background attempts (`DRAIN_MAX_RPS`, ramped after recovery).
    drain: DrainLimiter,
    /// Set on shutdown: start no more backend calls, so that every call
    /// in progress can write its outcome before the process exits.
    stopping: AtomicBool,
    /// The queue's lanes as last read (when, and each lane's stats), to
    /// hold a lane back while a higher one has work waiting.
    backlog: Mutex<Option<(i64, Vec<LaneStats>)>>,
}

impl Worker {
    pub fn new(policy: Arc<Policy>, deps: Deps, notifiers: Notifiers) -> Self {
        Self {
            drain: DrainLimiter::new(&policy),
            stopping: AtomicBool::new(false),
            backlog: Mutex::new(None),
            policy,
            deps,
            notifiers,
        }
    }

    /// Sends the spans recorded so far (a Lambda invocation's end).
    pub async fn flush_traces(&self) {
        self.deps.tracer.flush().await;
    }

    /// Whether shutdown has begun (no new backend calls).
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// How long a claim and a received message stay ours.
    pub fn lease(&self) -> Duration {
        self.policy.worker_lease()
    }

    /// Applies a disposition to the queue; false if the queue refused it
    /// (the message then reappears after its visibility timeout) or, for a
    /// requeue, if the fresh copy could not be sent (this one is then
    /// deferred instead, and must be kept).
    pub async fn settle(&self, delivery: &Delivery, disposition: Disposition) -> bool {
        let queue = &self.deps.queue;
        let done = match &disposition {
            Disposition::Ack => queue.ack(delivery).await,
            Disposition::Retry(delay) => queue.defer(delivery, *delay).await,
            Disposition::Requeue(delay) => {
                match queue.send(&delivery.body, delivery.priority, *delay).await {
                    // The copy is out: this one goes (a failed delete only
                    // leaves a duplicate, which the ticket makes harmless).
                    Ok(_) => queue.ack(delivery).await.or(Ok(())),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not requeue: deferring instead");
                        let _ = queue.defer(delivery, *delay).await;
                        Err(e)
                    }
                }
            }
            Disposition::DeadLetter(reason) => queue.dead_letter(delivery, reason).await,
        };
        match done {
            Ok(()) => true,
            // Redelivered meanwhile: the newer delivery settles it.
            Err(QueueError::StaleReceipt) => {
                tracing::debug!(message_id = %delivery.message_id, "stale receipt");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, ?disposition, "could not settle a message");
                false
            }
        }
    }

    /// Local mode: receive, handle and settle until `shutdown` resolves, with
    /// at most `concurrency` messages in progress; then finishes those.
    pub async fn run(self: Arc<Self>, concurrency: usize, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        tokio::pin!(shutdown);
        loop {
            // Only take as many messages as we can start now, so that none
            // sits invisible while waiting for a slot.
            let first = tokio::select! {
                _ = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => permit,
            };
            let Ok(first) = first else { break };
            let free = slots.available_permits() + 1;
            let received = tokio::select! {
                _ = &mut shutdown => break,
                r = self.deps.queue.receive(free.min(10), self.lease(), Duration::from_secs(1)) => r,
            };
            let deliveries = match received {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "queue receive failed; retrying");
                    drop(first);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut first = Some(first);
            for delivery in deliveries {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match slots.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let worker = self.clone();
                tokio::spawn(async move {
                    let disposition = worker.handle(&delivery).await;
                    worker.settle(&delivery, disposition).await;
                    drop(permit);
                });
            }
        }
        // Let the messages in progress finish: no new backend call starts
        // now, and one under way ends by its deadline, well inside a lease.
        self.stopping.store(true, Ordering::SeqCst);
        let drain = slots.acquire_many(concurrency.max(1) as u32);
        let _ = tokio::time::timeout(self.lease(), drain).await;
    }
}
