//! In-memory adapters: the same ports with no I/O at all.
//!
//! They exist for tests that run on tokio's paused clock (a blocking SQLite
//! call would let paused time jump past a deadline) and as a second back end
//! for the conformance suites. Not durable: never used by a binary.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use failover_core::breaker::board::{BreakerBoard, Posted, ResetRequest, RESETS_KEPT};
use failover_core::drill::{with_started, with_stopped, Drill, DrillStore, Scope};
use failover_core::lane::served_rank;
use failover_core::operator::ports::{TicketPage, TicketScan};
use failover_core::ports::{
    Clock, Delivery, EventPublisher, IdemRecord, IdempotencyStore, NotifyError, Priority, Queue,
    QueueError, QueueStats, StoreError, TicketStore, TopicEvent,
};
use failover_core::ticket::{Status, Ticket, TicketId};
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    priority: Priority,
    sent_at: i64,
    visible_at: i64,
    receive_count: u32,
    receipt: Option<String>,
}

#[derive(Default)]
struct State {
    tickets: HashMap<TicketId, Ticket>,
    idem: HashMap<String, IdemRecord>,
    queue: BTreeMap<u64, Message>,
    next_seq: u64,
    dead: Vec<(Message, String)>,
    published: Vec<TopicEvent>,
    drills: Vec<Drill>,
    posted: Vec<Posted>,
    resets: Vec<ResetRequest>,
}

#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    arrivals: Arc<Notify>,
    max_receives: u32,
    /// `LANE_AGEING_S`, for the receive order.
    lane_ageing: Duration,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::default(),
            clock,
            arrivals: Arc::new(Notify::new()),
            max_receives: 100,
            lane_ageing: failover_core::lane::Lanes::default().ageing,
        }
    }

    /// Ages lanes by `ageing` in the receive order.
    pub fn with_lane_ageing(mut self, ageing: Duration) -> Self {
        self.lane_ageing = ageing;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Topic events published so far.
    pub fn published(&self) -> Vec<TopicEvent> {
        self.lock().published.clone()
    }

    /// Every ticket id stored (tests check them all).
    pub fn ticket_ids(&self) -> Vec<TicketId> {
        self.lock().tickets.keys().copied().collect()
    }

    /// Bodies and reasons of dead-lettered messages.
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.lock()
            .dead
            .iter()
            .map(|(m, r)| (m.body.clone(), r.clone()))
            .collect()
    }
}

#[async_trait]
impl DrillStore for MemoryStore {
    async fn drills(&self) -> Result<Vec<Drill>, StoreError> {
        Ok(self.lock().drills.clone())
    }

    async fn start(&self, drill: &Drill) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let s = &mut self.lock().drills;
        *s = with_started(std::mem::take(s), drill, now);
        Ok(())
    }

    async fn stop(&self, scope: Option<&Scope>) -> Result<usize, StoreError> {
        let s = &mut self.lock().drills;
        let (left, gone) = with_stopped(std::mem::take(s), scope);
        *s = left;
        Ok(gone)
    }
}

#[async_trait]
impl BreakerBoard for MemoryStore {
    async fn post(&self, posts: &[Posted]) -> Result<(), StoreError> {
        self.lock().posted = posts.to_vec();
        Ok(())
    }

    async fn posted(&self) -> Result<Vec<Posted>, StoreError> {
        Ok(self.lock().posted.clone())
    }

    async fn request_reset(&self, r: &ResetRequest) -> Result<i64, StoreError> {
        let resets = &mut self.lock().resets;
        let id = resets.last().map_or(1, |last| last.id + 1);
        resets.push(ResetRequest { id, ..r.clone() });
        resets.retain(|r| r.id > id - RESETS_KEPT);
        Ok(id)
    }

    async fn resets_after(&self, after: i64) -> Result<Vec<ResetRequest>, StoreError> {
        let resets = &self.lock().resets;
        Ok(resets.iter().filter(|r| r.id > after).cloned().collect())
    }
}

#[async_trait]
impl TicketScan for MemoryStore {
    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<TicketPage, StoreError> {
        let now = self.clock.now_ms();
        let s = self.lock();
        let mut live: Vec<(String, &Ticket)> = s
            .tickets
            .values()
            .filter(|t| t.purge_at() > now)
            .map(|t| (t.id.to_string(), t))
            .filter(|(id, _)| cursor.as_ref().is_none_or(|c| id > c))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let more = live.len() > limit;
        live.truncate(limit);
        Ok(TicketPage {
            next: more
                .then(|| live.last().map(|(id, _)| id.clone()))
                .flatten(),
            tickets: live.into_iter().map(|(_, t)| t.clone()).collect(),
        })
    }
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn create(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        match s.tickets.get(&ticket.id) {
            Some(t) if t.purge_at() > now => Err(StoreError::Conflict),
            _ => {
                s.tickets.insert(ticket.id, ticket.clone());
                Ok(())
            }
        }
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let now = self.clock.now_ms();
        Ok(self
            .lock()
            .tickets
            .get(id)
            .filter(|t| t.purge_at() > now)
            .cloned())
    }

    async fn update(
        &self,
        next: &Ticket,
        expected_status: Status,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        match s.tickets.get_mut(&next.id) {
            Some(t) if t.status == expected_status && t.version == expected_version => {
                *t = next.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
        let now = self.clock.now_ms();
        Ok(self
            .lock()
            .tickets
            .values()
            .filter(|t| t.purge_at() > now && t.due_at().is_some_and(|d| d < before))
            .take(limit)
            .map(|t| t.id)
            .collect())
    }

    async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
        let now = self.clock.now_ms();
        let s = self.lock();
        let live = s.tickets.values().filter(|t| t.purge_at() > now);
        let waiting = live.filter(|t| !t.status.is_terminal());
        Ok(waiting.filter_map(Ticket::due_at).min())
    }

    async fn delete(&self, id: &TicketId, expected_version: u64) -> Result<(), StoreError> {
        let mut s = self.lock();
        match s.tickets.get(id) {
            Some(t) if t.version == expected_version => {
                s.tickets.remove(id);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn insert(&self, record: &IdemRecord) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        match s.idem.get(&record.key) {
            Some(r) if r.expires_at > now => Err(StoreError::Conflict),
            _ => {
                s.idem.insert(record.key.clone(), record.clone());
                Ok(())
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let now = self.clock.now_ms();
        Ok(self
            .lock()
            .idem
            .get(key)
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn replace(&self, record: &IdemRecord, expected_version: u64) -> Result<(), StoreError> {
        let mut s = self.lock();
        match s.idem.get_mut(&record.key) {
            Some(r) if r.version == expected_version => {
                *r = record.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

impl MemoryStore {
    fn by_receipt(s: &mut State, receipt: &str) -> Option<u64> {
        s.queue
            .iter()
            .find(|(_, m)| m.receipt.as_deref() == Some(receipt))
            .map(|(seq, _)| *seq)
    }

    fn receive_now(&self, max: usize, visibility: Duration) -> Vec<Delivery> {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        let ageing = self.lane_ageing;
        let mut ready: Vec<(u8, i64, u64)> = s
            .queue
            .iter()
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(seq, m)| {
                let p = m.priority;
                let rank = served_rank(p.lane, p.since_ms, now, ageing);
                (rank, m.visible_at, *seq)
            })
            .collect();
        ready.sort_unstable();
        let mut out = Vec::new();
        for (_, _, seq) in ready.into_iter().take(max) {
            let Some(m) = s.queue.get_mut(&seq) else {
                continue;
            };
            if m.receive_count >= self.max_receives {
                if let Some(m) = s.queue.remove(&seq) {
                    s.dead.push((m, "max receives exceeded".into()));
                }
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now + visibility.as_millis() as i64;
            let receipt = format!("{seq}:{}", Uuid::new_v4().simple());
            m.receipt = Some(receipt.clone());
            out.push(Delivery {
                message_id: m.id.clone(),
                receipt,
                body: m.body.clone(),
                receive_count: m.receive_count,
                priority: m.priority,
            });
        }
        out
    }
}

#[async_trait]
impl Queue for MemoryStore {
    async fn send(
        &self,
        body: &str,
        priority: Priority,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let now = self.clock.now_ms();
        let id = Uuid::new_v4().to_string();
        {
            let mut s = self.lock();
            s.next_seq += 1;
            let seq = s.next_seq;
            s.queue.insert(
                seq,
                Message {
                    id: id.clone(),
                    body: body.to_string(),
                    priority,
                    sent_at: now,
                    visible_at: now + delay.as_millis() as i64,
                    receive_count: 0,
                    receipt: None,
                },
            );
        }
        self.arrivals.notify_waiters();
        Ok(id)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrivals.notified();
            let got = self.receive_now(max, visibility);
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), arrived).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let mut s = self.lock();
        let seq = Self::by_receipt(&mut s, &delivery.receipt).ok_or(QueueError::StaleReceipt)?;
        s.queue.remove(&seq);
        Ok(())
    }

    async fn defer(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        let seq = Self::by_receipt(&mut s, &delivery.receipt).ok_or(QueueError::StaleReceipt)?;
        if let Some(m) = s.queue.get_mut(&seq) {
            m.visible_at = now + delay.as_millis() as i64;
        }
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let mut s = self.lock();
        let seq = Self::by_receipt(&mut s, &delivery.receipt).ok_or(QueueError::StaleReceipt)?;
        if let Some(m) = s.queue.remove(&seq) {
            s.dead.push((m, reason.to_string()));
        }
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = self.clock.now_ms();
        let s = self.lock();
        let messages = s
            .queue
            .values()
            .map(|m| (m.priority.lane, m.visible_at <= now, 1, m.sent_at));
        Ok(QueueStats::of(messages, s.dead.len() as u64, now))
    }
}

#[async_trait]
impl EventPublisher for MemoryStore {
    async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError> {
        let mut s = self.lock();
        if !s.published.iter().any(|e| e.event_id == event.event_id) {
            s.published.push(event.clone());
        }
        Ok(())
    }
}
