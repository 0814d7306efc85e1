//! Fault injection: wrap any adapter, then make chosen operations fail or
//! slow down at run time (like object_store's `throttle.rs`).
//!
//! The failover paths run only in emergencies, so they are tested by turning
//! faults on under a running service: the store goes away during capture and
//! the client must get 503; the queue stalls and the capture budget must
//! still answer in time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use failover_core::ports::{
    Delivery, IdemRecord, IdempotencyStore, Priority, Queue, QueueError, QueueStats, StoreError,
    TicketStore,
};
use failover_core::ticket::{Status, Ticket, TicketId};

/// The switches. Clone it to flip faults from a test while the service runs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub ticket_writes: Arc<AtomicBool>,
    pub ticket_reads: Arc<AtomicBool>,
    pub idempotency: Arc<AtomicBool>,
    pub queue_send: Arc<AtomicBool>,
    pub queue_receive: Arc<AtomicBool>,
    /// The queue's counts (what `/health` and the lanes' hold-back read).
    pub queue_stats: Arc<AtomicBool>,
    /// Added to every operation, in milliseconds.
    pub latency_ms: Arc<AtomicU64>,
    /// Ticket creates are already on the wire when they are slow: a caller
    /// that stops waiting does not stop them, and they land after the
    /// latency (a write that lands after its timeout).
    pub creates_land_late: Arc<AtomicBool>,
    /// Ticket reads made so far (counted, not faulted).
    pub ticket_reads_made: Arc<AtomicU64>,
}

impl Faults {
    pub fn set(flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::SeqCst);
    }

    async fn enter(&self, flag: &AtomicBool, what: &str) -> Result<(), String> {
        let ms = self.latency_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if flag.load(Ordering::SeqCst) {
            Err(format!("injected fault: {what}"))
        } else {
            Ok(())
        }
    }
}

/// Any adapter, with [`Faults`] in front of it.
#[derive(Clone)]
pub struct Faulty<S> {
    inner: S,
    faults: Faults,
}

impl<S> Faulty<S> {
    pub fn new(inner: S, faults: Faults) -> Self {
        Self { inner, faults }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn store(e: String) -> StoreError {
    StoreError::Unavailable(e)
}

fn queue(e: String) -> QueueError {
    QueueError::Unavailable(e)
}

#[async_trait]
impl<S: TicketStore + Clone + 'static> TicketStore for Faulty<S> {
    async fn create(&self, t: &Ticket) -> Result<(), StoreError> {
        let f = &self.faults;
        if !f.creates_land_late.load(Ordering::SeqCst) {
            f.enter(&f.ticket_writes, "ticket create")
                .await
                .map_err(store)?;
            return self.inner.create(t).await;
        }
        let (f, inner, t) = (f.clone(), self.inner.clone(), t.clone());
        let write = tokio::spawn(async move {
            f.enter(&f.ticket_writes, "ticket create")
                .await
                .map_err(store)?;
            inner.create(&t).await
        });
        write.await.map_err(|e| store(e.to_string()))?
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let f = &self.faults;
        f.ticket_reads_made.fetch_add(1, Ordering::SeqCst);
        f.enter(&f.ticket_reads, "ticket read")
            .await
            .map_err(store)?;
        self.inner.get(id).await
    }

    async fn update(&self, t: &Ticket, s: Status, v: u64) -> Result<(), StoreError> {
        let f = &self.faults;
        f.enter(&f.ticket_writes, "ticket update")
            .await
            .map_err(store)?;
        self.inner.update(t, s, v).await
    }

    async fn delete(&self, id: &TicketId, v: u64) -> Result<(), StoreError> {
        let f = &self.faults;
        f.enter(&f.ticket_writes, "ticket delete")
            .await
            .map_err(store)?;
        self.inner.delete(id, v).await
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
        let f = &self.faults;
        f.enter(&f.ticket_reads, "ticket scan")
            .await
            .map_err(store)?;
        self.inner.overdue(before, limit).await
    }

    async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
        let f = &self.faults;
        f.enter(&f.ticket_reads, "ticket scan")
            .await
            .map_err(store)?;
        self.inner.oldest_due().await
    }
}

#[async_trait]
impl<S: IdempotencyStore> IdempotencyStore for Faulty<S> {
    async fn insert(&self, r: &IdemRecord) -> Result<(), StoreError> {
        let f = &self.faults;
        f.enter(&f.idempotency, "idempotency insert")
            .await
            .map_err(store)?;
        self.inner.insert(r).await
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let f = &self.faults;
        f.enter(&f.idempotency, "idempotency read")
            .await
            .map_err(store)?;
        self.inner.get(key).await
    }

    async fn replace(&self, r: &IdemRecord, v: u64) -> Result<(), StoreError> {
        let f = &self.faults;
        f.enter(&f.idempotency, "idempotency replace")
            .await
            .map_err(store)?;
        self.inner.replace(r, v).await
    }
}

#[async_trait]
impl<S: Queue> Queue for Faulty<S> {
    async fn send(
        &self,
        body: &str,
        priority: Priority,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let f = &self.faults;
        f.enter(&f.queue_send, "queue send").await.map_err(queue)?;
        self.inner.send(body, priority, delay).await
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let f = &self.faults;
        f.enter(&f.queue_receive, "queue receive")
            .await
            .map_err(queue)?;
        self.inner.receive(max, visibility, wait).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let f = &self.faults;
        f.enter(&f.queue_receive, "queue ack")
            .await
            .map_err(queue)?;
        self.inner.ack(delivery).await
    }

    async fn defer(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let f = &self.faults;
        f.enter(&f.queue_receive, "queue defer")
            .await
            .map_err(queue)?;
        self.inner.defer(delivery, delay).await
    }

    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        let f = &self.faults;
        f.enter(&f.queue_receive, "queue dead-letter")
            .await
            .map_err(queue)?;
        self.inner.dead_letter(d, reason).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let f = &self.faults;
        f.enter(&f.queue_stats, "queue stats")
            .await
            .map_err(queue)?;
        self.inner.stats().await
    }
}
