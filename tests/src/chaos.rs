//! A fault at one chosen operation: any adapters (in memory, SQLite, or
//! DynamoDB, SQS and SNS on the emulators), the fleet's health store and
//! the backend behind a layer that numbers every store, queue, topic,
//! health and backend call across the run
//! and, at the numbers a
//! schedule names, fails it (error), never answers it (timeout), answers
//! only after applying it 30 s later (a write that lands after its
//! timeout; a backend call that reaches the backend late and whose answer
//! is lost), or kills the process there (this and every later call of that
//! process never answers; a new process takes over).
//!
//! Runs on tokio's paused clock. An adapter that does real I/O (a SQLite
//! writer thread, a network call) would let paused time jump while it waits
//! (tokio advances an idle runtime to its next timer, firing deadlines that
//! never passed), so with `guard_io` every call runs inside
//! `spawn_blocking`, during which tokio does not advance the clock.

use std::future::{pending, Future};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failover_core::breaker::rules::{BreakerState, Bucket};
use failover_core::breaker::store::{Budget, HealthRecord, View};
use failover_core::breaker::{HealthStore, InProcessHealth};
use failover_core::ports::{
    Backend, BackendError, BackendRequest, BackendResponse, Delivery, EventPublisher, IdemRecord,
    IdempotencyStore, NotifyError, Priority, Queue, QueueError, QueueStats, StoreError,
    TicketStore, TopicEvent, WebhookSender,
};
use failover_core::ticket::{Status, Ticket, TicketId};
use failover_core::webhook::SignedHeaders;

/// Every port the engine and the worker use, from one back end.
pub trait Ports: TicketStore + IdempotencyStore + Queue + EventPublisher + Clone + 'static {}
impl<T: TicketStore + IdempotencyStore + Queue + EventPublisher + Clone + 'static> Ports for T {}

/// Runs `op` where paused time cannot jump while it waits on real I/O.
pub async fn guarded<T: Send + 'static>(
    op: impl Future<Output = T> + Send + 'static,
    guard_io: bool,
) -> T {
    if !guard_io {
        return op.await;
    }
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || handle.block_on(op)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error,
    Timeout,
    LandsLate,
    Crash,
}

pub const KINDS: [Kind; 4] = [Kind::Error, Kind::Timeout, Kind::LandsLate, Kind::Crash];

/// The faults of one schedule, and the count of operations so far.
#[derive(Default)]
pub struct Plan {
    faults: Vec<(usize, Kind)>,
    /// Whether calls run under [`guarded`].
    pub guard_io: bool,
    /// Every ticket a create was attempted for (it may have landed).
    pub created: Mutex<Vec<TicketId>>,
    /// Every backend call made, when it was made (it may reach the backend
    /// later, or never), and for which body.
    pub sent: Mutex<Vec<(tokio::time::Instant, String)>>,
    next: AtomicUsize,
    /// Recovery: no more faults.
    off: AtomicBool,
    /// Which operation each number was (for a failing schedule's report).
    pub trace: Mutex<Vec<&'static str>>,
}

impl Plan {
    pub fn new(faults: Vec<(usize, Kind)>, guard_io: bool) -> Arc<Self> {
        Arc::new(Self {
            faults,
            guard_io,
            ..Self::default()
        })
    }

    pub fn ops(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    pub fn stop_faults(&self) {
        self.off.store(true, Ordering::SeqCst);
    }

    pub fn faults_stopped(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }
}

/// The ports of one process.
#[derive(Clone)]
pub struct Chaos<S> {
    pub inner: S,
    backend: Arc<dyn Backend>,
    /// The fleet's health store, which outlives a process.
    health: Arc<InProcessHealth>,
    plan: Arc<Plan>,
    dead: Arc<AtomicBool>,
}

impl<S: Ports> Chaos<S> {
    pub fn new(
        inner: S,
        backend: Arc<dyn Backend>,
        health: Arc<InProcessHealth>,
        plan: Arc<Plan>,
    ) -> Self {
        Self {
            inner,
            backend,
            health,
            plan,
            dead: Arc::default(),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    async fn run<T: Send + 'static, E: Send + 'static>(
        &self,
        name: &'static str,
        op: impl Future<Output = Result<T, E>> + Send + 'static,
        fail: impl Fn(String) -> E,
    ) -> Result<T, E> {
        self.run_as(name, op, fail, self.plan.guard_io).await
    }

    /// `run`, saying whether the call does real I/O (the backend here is
    /// in-process and sleeps on tokio's clock, which must then move).
    async fn run_as<T: Send + 'static, E: Send + 'static>(
        &self,
        name: &'static str,
        op: impl Future<Output = Result<T, E>> + Send + 'static,
        fail: impl Fn(String) -> E,
        guard_io: bool,
    ) -> Result<T, E> {
        if self.is_dead() {
            return pending().await;
        }
        let n = self.plan.next.fetch_add(1, Ordering::SeqCst);
        self.plan.trace.lock().expect("trace").push(name);
        let fault = match self.plan.off.load(Ordering::SeqCst) {
            true => None,
            false => self
                .plan
                .faults
                .iter()
                .find(|(at, _)| *at == n)
                .map(|f| f.1),
        };
        match fault {
            None => guarded(op, guard_io).await,
            Some(Kind::Error) => Err(fail(format!("injected error at operation {n} ({name})"))),
            Some(Kind::Timeout) => pending().await,
            Some(Kind::LandsLate) => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    let _ = guarded(op, guard_io).await;
                });
                pending().await
            }
            Some(Kind::Crash) => {
                self.dead.store(true, Ordering::SeqCst);
                pending().await
            }
        }
    }
}

fn store(e: String) -> StoreError {
    StoreError::Unavailable(e)
}

fn queue(e: String) -> QueueError {
    QueueError::Unavailable(e)
}

#[async_trait]
impl<S: Ports> TicketStore for Chaos<S> {
    async fn create(&self, t: &Ticket) -> Result<(), StoreError> {
        self.plan.created.lock().expect("created").push(t.id);
        let (s, t) = (self.inner.clone(), t.clone());
        self.run("ticket create", async move { s.create(&t).await }, store)
            .await
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let (s, id) = (self.inner.clone(), *id);
        self.run(
            "ticket get",
            async move { TicketStore::get(&s, &id).await },
            store,
        )
        .await
    }

    async fn update(&self, t: &Ticket, status: Status, v: u64) -> Result<(), StoreError> {
        let (s, t) = (self.inner.clone(), t.clone());
        let op = async move { s.update(&t, status, v).await };
        self.run("ticket update", op, store).await
    }

    async fn delete(&self, id: &TicketId, v: u64) -> Result<(), StoreError> {
        let (s, id) = (self.inner.clone(), *id);
        self.run(
            "ticket delete",
            async move { TicketStore::delete(&s, &id, v).await },
            store,
        )
        .await
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
        let s = self.inner.clone();
        let op = async move { s.overdue(before, limit).await };
        self.run("ticket scan", op, store).await
    }

    async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
        let s = self.inner.clone();
        guarded(async move { s.oldest_due().await }, self.plan.guard_io).await
    }
}

#[async_trait]
impl<S: Ports> IdempotencyStore for Chaos<S> {
    async fn insert(&self, r: &IdemRecord) -> Result<(), StoreError> {
        let (s, r) = (self.inner.clone(), r.clone());
        self.run("key insert", async move { s.insert(&r).await }, store)
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let (s, key) = (self.inner.clone(), key.to_string());
        let op = async move { IdempotencyStore::get(&s, &key).await };
        self.run("key get", op, store).await
    }

    async fn replace(&self, r: &IdemRecord, v: u64) -> Result<(), StoreError> {
        let (s, r) = (self.inner.clone(), r.clone());
        self.run("key replace", async move { s.replace(&r, v).await }, store)
            .await
    }
}

#[async_trait]
impl<S: Ports> Queue for Chaos<S> {
    async fn send(
        &self,
        body: &str,
        priority: Priority,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let (s, body) = (self.inner.clone(), body.to_string());
        let op = async move { s.send(&body, priority, delay).await };
        self.run("queue send", op, queue).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let s = self.inner.clone();
        let op = async move { s.receive(max, visibility, wait).await };
        self.run("queue receive", op, queue).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (s, d) = (self.inner.clone(), delivery.clone());
        self.run("queue ack", async move { s.ack(&d).await }, queue)
            .await
    }

    async fn defer(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let (s, d) = (self.inner.clone(), delivery.clone());
        let op = async move { s.defer(&d, delay).await };
        self.run("queue defer", op, queue).await
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (s, d, why) = (self.inner.clone(), d.clone(), reason.to_string());
        let op = async move { s.dead_letter(&d, &why).await };
        self.run("queue dead-letter", op, queue).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let s = self.inner.clone();
        guarded(async move { s.stats().await }, self.plan.guard_io).await
    }
}

#[async_trait]
impl<S: Ports> EventPublisher for Chaos<S> {
    async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError> {
        let (s, e) = (self.inner.clone(), event.clone());
        self.run(
            "topic publish",
            async move { s.publish(&e).await },
            NotifyError,
        )
        .await
    }
}

/// The health store of a fleet so large for its budget that even one
/// process samples (reports one refresh in two, reads and publishes
/// views): every path of the fleet gate meets the faults.
#[async_trait]
impl<S: Ports> HealthStore for Chaos<S> {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        let (h, counts) = (self.health.clone(), counts.to_vec());
        let name = match counts.is_empty() {
            true => "health read",
            false => "health report",
        };
        let op = async move { h.exchange(&counts, window_s).await };
        self.run_as(name, op, store, false).await
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        let (h, next) = (self.health.clone(), next.clone());
        let op = async move { h.replace(&next).await };
        self.run_as("health write", op, store, false).await
    }

    async fn read_view(&self) -> Result<Option<View>, StoreError> {
        let h = self.health.clone();
        let op = async move { h.read_view().await };
        self.run_as("health view read", op, store, false).await
    }

    async fn publish_view(&self, view: &View) -> Result<(), StoreError> {
        let (h, view) = (self.health.clone(), view.clone());
        let op = async move { h.publish_view(&view).await };
        self.run_as("health view publish", op, store, false).await
    }

    fn budget(&self, _window_s: i64) -> Budget {
        Budget {
            reports_per_s: 0.5,
            views_per_s: 1.0,
        }
    }
}

#[async_trait]
impl<S: Ports> Backend for Chaos<S> {
    async fn call(&self, req: BackendRequest<'_>) -> Result<BackendResponse, BackendError> {
        let body = req.body.to_vec();
        if !self.is_dead() {
            let sent = (
                tokio::time::Instant::now(),
                String::from_utf8_lossy(&body).into_owned(),
            );
            self.plan.sent.lock().expect("sent").push(sent);
        }
        let backend = self.backend.clone();
        let (id, request_id) = (*req.ticket_id, req.request_id.to_string());
        let (method, url) = (req.method.to_string(), req.url.to_string());
        let (headers, content_type) = (req.headers.to_vec(), req.content_type.to_string());
        let trace = req.trace.cloned();
        let keep = req.response_headers.to_vec();
        let op = async move {
            let req = BackendRequest {
                ticket_id: &id,
                request_id: &request_id,
                method: &method,
                url: &url,
                headers: &headers,
                body: &body,
                content_type: &content_type,
                trace: trace.as_ref(),
                response_headers: &keep,
            };
            backend.call(req).await
        };
        self.run_as("backend call", op, BackendError, false).await
    }
}

/// No webhooks in these runs (the topic is the channel under test).
pub struct NoWebhooks;

#[async_trait]
impl WebhookSender for NoWebhooks {
    async fn post(
        &self,
        _url: &str,
        _h: &SignedHeaders,
        _b: &str,
        _t: Duration,
    ) -> Result<u16, NotifyError> {
        Err(NotifyError("no webhooks in these tests".into()))
    }
}
