//! Ports: one trait per capability the engine and the worker need.
//!
//! Adapters implement them: the embedded SQLite store and the HTTP clients in
//! `functions/adapters`, DynamoDB/SQS/SNS for AWS mode. Every adapter passes
//! the same conformance suite (`tests/conformance`), so the core can rely on
//! the semantics written here, not on any one back end:
//!
//! - writes are conditional: a lost race is [`StoreError::Conflict`], never a
//!   silent overwrite;
//! - a queue delivery is at-least-once; each delivery carries a new receipt,
//!   and the core acknowledges with the latest one (what an older receipt
//!   still does is back-end specific, as on SQS).

use std::time::Duration;

use async_trait::async_trait;

use crate::lane::Lane;
use crate::ticket::{Status, Ticket, TicketId};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The condition of a conditional write did not hold.
    #[error("conditional write lost a race")]
    Conflict,
    /// The store could not be reached or failed; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The receipt belongs to an earlier delivery (or the message is gone).
    #[error("receipt is no longer valid")]
    StaleReceipt,
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

/// Where tickets live. `update` is the compare-and-set of the life cycle.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Writes a new ticket; `Conflict` if one with this id exists.
    async fn create(&self, ticket: &Ticket) -> Result<(), StoreError>;
    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError>;
    /// Replaces the ticket only if it still has `expected_status` and
    /// `expected_version`; otherwise `Conflict`.
    async fn update(
        &self,
        next: &Ticket,
        expected_status: Status,
        expected_version: u64,
    ) -> Result<(), StoreError>;
    /// Removes a ticket still at `expected_version` (undoing a capture whose
    /// message could not be queued). `Conflict` if it moved or is gone.
    async fn delete(&self, id: &TicketId, expected_version: u64) -> Result<(), StoreError>;
    /// Up to `limit` tickets whose [`Ticket::due_at`] is before `before`
    /// (ms), for the sweeper: non-terminal ones, and terminal ones with a
    /// notification still to send.
    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError>;
    /// The earliest [`Ticket::due_at`] of any non-terminal ticket: how long
    /// the oldest waiting request has waited (`/health`, where the queue
    /// cannot say, as SQS cannot).
    async fn oldest_due(&self) -> Result<Option<i64>, StoreError>;
}

/// The stored outcome of a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdemOutcome {
    /// The first call is still running until `lease_until` (ms), under
    /// this ticket id (a takeover reuses it, so a ticket the first call
    /// may have written is the same request, not a second one).
    InFlight {
        lease_until: i64,
        ticket_id: TicketId,
    },
    /// The backend answered in time: replay this.
    Sync {
        status: u16,
        #[serde(with = "crate::body")]
        body: Vec<u8>,
        content_type: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, String)>,
        ticket_id: TicketId,
    },
    /// The request went async: replay the 202 for this ticket.
    Accepted {
        ticket_id: TicketId,
        reason: crate::ticket::Reason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdemRecord {
    pub key: String,
    /// SHA-256 of the body, hex.
    pub fingerprint: String,
    pub version: u64,
    pub outcome: IdemOutcome,
    pub expires_at: i64,
}

/// Idempotency records, keyed by the client's `Idempotency-Key`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Inserts a record; `Conflict` if the key exists (and has not expired).
    async fn insert(&self, record: &IdemRecord) -> Result<(), StoreError>;
    /// The record, unless absent or past `expires_at`.
    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError>;
    /// Compare-and-set on `expected_version`.
    async fn replace(&self, record: &IdemRecord, expected_version: u64) -> Result<(), StoreError>;
}

/// Where a message stands in the drain order: its lane, and since when it
/// has been waiting to be processed (the lane ages from then; see
/// [`crate::lane::served_rank`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub lane: Lane,
    pub since_ms: i64,
}

impl Priority {
    /// A `normal` message waiting since `since_ms`.
    pub fn normal(since_ms: i64) -> Self {
        Self {
            lane: Lane::Normal,
            since_ms,
        }
    }
}

/// One delivery of a queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// As it was sent.
    pub priority: Priority,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Messages ready to be received now.
    pub visible: u64,
    /// Received and not yet acknowledged, or delayed.
    pub in_flight: u64,
    pub dead_letters: u64,
    /// Age of the oldest message not yet acknowledged.
    pub oldest_age_ms: Option<u64>,
    /// The same per lane, highest first.
    pub lanes: Vec<LaneStats>,
}

impl QueueStats {
    /// The stats of groups of messages given as (lane, visible now, how
    /// many, the oldest one's sending time).
    pub fn of(
        groups: impl Iterator<Item = (Lane, bool, u64, i64)>,
        dead_letters: u64,
        now_ms: i64,
    ) -> Self {
        let mut lanes: Vec<LaneStats> = Lane::ALL.into_iter().map(LaneStats::empty).collect();
        for (lane, visible, count, sent_at) in groups {
            let l = &mut lanes[lane.rank() as usize];
            match visible {
                true => l.visible += count,
                false => l.in_flight += count,
            }
            let age = (now_ms - sent_at).max(0) as u64;
            l.oldest_age_ms = Some(l.oldest_age_ms.map_or(age, |a| a.max(age)));
        }
        Self {
            visible: lanes.iter().map(|l| l.visible).sum(),
            in_flight: lanes.iter().map(|l| l.in_flight).sum(),
            dead_letters,
            oldest_age_ms: lanes.iter().filter_map(|l| l.oldest_age_ms).max(),
            lanes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaneStats {
    pub lane: Lane,
    pub visible: u64,
    pub in_flight: u64,
    /// `None` where the queue cannot tell (SQS).
    pub oldest_age_ms: Option<u64>,
}

impl LaneStats {
    pub fn empty(lane: Lane) -> Self {
        Self {
            lane,
            visible: 0,
            in_flight: 0,
            oldest_age_ms: None,
        }
    }
}

/// The durable queue between capture and worker.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Durably enqueues; returns the message id.
    async fn send(
        &self,
        body: &str,
        priority: Priority,
        delay: Duration,
    ) -> Result<String, QueueError>;
    /// Up to `max` visible messages, hidden for `visibility` after receipt,
    /// highest lane first (as each is served: see
    /// [`crate::lane::served_rank`]; SQS, one queue per lane, orders by
    /// lane alone and leaves ageing to the worker), then oldest due first.
    /// Waits up to `wait` for one to arrive (long polling).
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;
    /// Deletes the delivered message.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;
    /// Makes the delivered message visible again after `delay`.
    async fn defer(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError>;
    /// Moves a message that can never be processed to the dead-letter queue.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError>;
    async fn stats(&self) -> Result<QueueStats, QueueError>;
}

/// A request to the protected backend: the route's method and URL, the
/// headers it forwards, and the body's exact bytes (the adapter adds the
/// ticket id as `Idempotency-Key` and the request id).
#[derive(Debug, Clone)]
pub struct BackendRequest<'a> {
    pub ticket_id: &'a TicketId,
    pub request_id: &'a str,
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// Empty when there is no body.
    pub content_type: &'a str,
    /// The calling span: sent as `traceparent` (and `tracestate`), in
    /// place of any the route forwards.
    pub trace: Option<&'a crate::trace::TraceContext>,
    /// The response headers its route passes on (lower case): an adapter
    /// need not keep the others.
    pub response_headers: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// Response headers (only those its route lists are passed on).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("backend unreachable: {0}")]
pub struct BackendError(pub String);

/// The protected backend. Deadlines are enforced by the caller (the engine
/// wraps calls in `tokio::time::timeout`, so tests can pause time).
#[async_trait]
pub trait Backend: Send + Sync {
    async fn call(&self, request: BackendRequest<'_>) -> Result<BackendResponse, BackendError>;
}

/// A terminal event for the topic (SNS in AWS mode, a log table locally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEvent {
    pub event_id: String,
    /// `ticket.succeeded` | `ticket.failed`: the `event_type` attribute.
    pub event_type: String,
    /// The ticket status: the `status` attribute.
    pub status: String,
    /// The publishing span's `traceparent`: a message attribute.
    pub traceparent: Option<String>,
    /// What email and SMS subscribers get instead of `body`.
    pub notice: Option<crate::notice::Notice>,
    pub body: String,
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError>;
}

/// One webhook POST. Returns the receiver's HTTP status.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn post(
        &self,
        url: &str,
        headers: &crate::webhook::SignedHeaders,
        body: &str,
        timeout: Duration,
    ) -> Result<u16, NotifyError>;
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that follows tokio's (pausable) time from a fixed start, so that
/// tests with `tokio::time::pause()` see wall time advance with `advance()`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_ms: i64) -> Self {
        Self {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}
