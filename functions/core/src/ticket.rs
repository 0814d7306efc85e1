//! The ticket: what a client holds after a `202 Accepted`, and its life cycle.
//!
//! `queued -> processing -> succeeded | failed`, plus `processing -> queued`
//! when a retryable attempt is scheduled again. Every change goes through a
//! method here that returns the *next* ticket with `version + 1`; the store
//! then writes it with a compare-and-set on the *previous* status and version
//! (see [`crate::ports::TicketStore::update`]). Two workers that race on one
//! ticket therefore cannot both win, and nothing can move a terminal ticket
//! except recording notification attempts, which keep its status.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

use crate::lane::Lane;

/// How long a ticket stays readable after `expires_at`.
pub const RETENTION_AFTER_EXPIRY_MS: i64 = 24 * 3600 * 1000;

/// A ticket id: a UUID (v7 when we mint it, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(Uuid);

impl TicketId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for TicketId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Malformed ticket id (the API answers 400).
#[derive(Debug, thiserror::Error)]
#[error("a ticket id is a UUID such as 0190a5b2-7c3e-7d4a-9b1f-2c3d4e5f6a7b")]
pub struct BadTicketId;

impl FromStr for TicketId {
    type Err = BadTicketId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form: one spelling, one ticket.
        if s.len() != 36 {
            return Err(BadTicketId);
        }
        Uuid::parse_str(s).map(Self).map_err(|_| BadTicketId)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Processing,
    Succeeded,
    Failed,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }

    /// The state machine, in one place.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Queued, Processing)
                | (Processing, Processing) // a lease that ran out is claimed again
                | (Processing, Queued)
                | (Processing, Succeeded)
                | (Processing, Failed)
                | (Queued, Failed) // expired before anyone could try
        )
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Status::Queued,
            "processing" => Status::Processing,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            other => return Err(format!("unknown status {other:?}")),
        })
    }
}

/// Why a request went async.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Timeout,
    BackendError,
    CircuitOpen,
    Overloaded,
    ClientRequested,
    Forced,
    /// Its lane is outside its window (`LANE_WINDOWS`).
    Scheduled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::BackendError => "backend_error",
            Reason::CircuitOpen => "circuit_open",
            Reason::Overloaded => "overloaded",
            Reason::ClientRequested => "client_requested",
            Reason::Forced => "forced",
            Reason::Scheduled => "scheduled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The backend answered 4xx: a definitive no, never retried.
    Rejected,
    /// `MAX_ATTEMPTS` background attempts failed.
    Exhausted,
    /// `TICKET_TTL_SECONDS` passed before the ticket could finish.
    Expired,
    /// Its route is no longer in the routes file: nothing can run it.
    Unroutable,
    /// Cancelled while queued, by its client or an operator: never sent.
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Expired => "expired",
            ErrorKind::Unroutable => "unroutable",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What the backend answered, kept verbatim for `GET /tickets/{id}/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendResult {
    pub status_code: u16,
    #[serde(with = "crate::body")]
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// The response headers its route passes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

/// The request as it was accepted; the worker replays exactly this, to
/// the backend its route names then (see [`crate::route`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedRequest {
    #[serde(with = "crate::body")]
    pub body: Vec<u8>,
    pub content_type: String,
    pub request_id: String,
    pub callback_url: Option<String>,
    /// The route it came by (tickets from before routes: `requests`).
    #[serde(default = "default_route")]
    pub route: String,
    /// Its path parameters and query string, for the backend URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The request headers its route forwards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Its priority lane (tickets from before lanes: `normal`).
    #[serde(default)]
    pub lane: Lane,
    /// A fingerprint of the caller the host authenticated (IAM or JWT on
    /// AWS; none locally): only that caller may cancel it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its trace: the capture span's context once it is a ticket (the
    /// worker continues the trace from it; see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
}

fn default_route() -> String {
    crate::route::DEFAULT_ROUTE.to_string()
}

impl CapturedRequest {
    /// A request to the default route (`POST /requests`), as tests and
    /// tickets from before routes have it.
    pub fn new(body: impl Into<Vec<u8>>, content_type: &str, request_id: &str) -> Self {
        Self {
            body: body.into(),
            content_type: content_type.into(),
            request_id: request_id.into(),
            callback_url: None,
            route: default_route(),
            params: Vec::new(),
            query: None,
            headers: Vec::new(),
            lane: Lane::Normal,
            owner: None,
            trace: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Webhook,
    Sns,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Sns => "sns",
        }
    }
}

/// The longest error text kept on a notification attempt: a receiver's or
/// an SDK's message can be long, and a ticket must stay small (each
/// attempt stays on it; see `WEBHOOK_MAX_ATTEMPTS`).
pub const NOTIFICATION_ERROR_MAX: usize = 300;

/// One delivery attempt of the terminal event, shown on the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationAttempt {
    pub channel: Channel,
    pub attempt: u32,
    pub at: i64,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// The terminal event, built once so that every retry sends the same bytes
/// under the same `webhook-id` (receivers deduplicate on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEvent {
    pub event_id: String,
    pub event_type: String,
    /// The event as stored; what is sent is
    /// [`crate::view::event_message`] of it.
    pub payload: String,
    /// Whether the answer was left out of `payload` (the ticket holds it:
    /// stored once) and goes back in when the event is sent.
    #[serde(default)]
    pub answer_elided: bool,
    pub webhook_done: bool,
    pub sns_done: bool,
    pub next_webhook_at: i64,
    /// When the topic is next tried (0: at once).
    #[serde(default)]
    pub next_sns_at: i64,
}

impl PendingEvent {
    pub fn is_done(&self) -> bool {
        self.webhook_done && self.sns_done
    }

    /// When the next delivery is due, if any is left.
    pub fn next_due(&self) -> Option<i64> {
        let sns = (!self.sns_done).then_some(self.next_sns_at);
        let webhook = (!self.webhook_done).then_some(self.next_webhook_at);
        sns.into_iter().chain(webhook).min()
    }
}

/// Times are milliseconds since the Unix epoch, from the [`crate::Clock`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub status: Status,
    pub version: u64,
    pub reason: Reason,
    pub attempts: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    /// While `processing`: until when the claiming worker owns it.
    pub lease_until: Option<i64>,
    /// While `queued` after a failed attempt: when the next one is due.
    pub next_attempt_at: Option<i64>,
    pub request: CapturedRequest,
    pub result: Option<BackendResult>,
    pub error: Option<TicketError>,
    pub notifications: Vec<NotificationAttempt>,
    pub event: Option<PendingEvent>,
    /// Whether anything acted on it after its capture answered 202 (a
    /// worker, or the sync call it continued). Until then it may be a
    /// capture that failed half way (the client got 503, or no answer at
    /// all), which must never run: see [`Ticket::park`].
    #[serde(default)]
    pub delivered: bool,
    /// How many times an operator ran it again after it failed (0: never);
    /// each run's terminal event has an id of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub runs: u32,
    /// What operators (and a client cancelling it) did to it, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<crate::operator::Action>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A transition the state machine does not allow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ticket cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub from: Status,
    pub to: Status,
}

impl IllegalTransition {
    /// A change that keeps the status, not allowed in this one.
    fn within(status: Status) -> Self {
        Self {
            from: status,
            to: status,
        }
    }
}

impl Ticket {
    pub fn new(
        id: TicketId,
        reason: Reason,
        request: CapturedRequest,
        now: i64,
        ttl_ms: i64,
    ) -> Self {
        Self {
            id,
            status: Status::Queued,
            version: 1,
            reason,
            attempts: 0,
            created_at: now,
            updated_at: now,
            expires_at: now.saturating_add(ttl_ms),
            lease_until: None,
            next_attempt_at: None,
            request,
            result: None,
            error: None,
            notifications: Vec::new(),
            event: None,
            delivered: false,
            runs: 0,
            actions: Vec::new(),
        }
    }

    /// A ticket captured while its sync call still runs (local mode keeps
    /// following it): that call is its first attempt, owned until
    /// `lease_until`, so a worker that gets the message first waits for it
    /// instead of calling the backend a second time.
    pub fn in_flight(mut self, lease_until: i64) -> Ticket {
        self.status = Status::Processing;
        self.attempts = 1;
        self.lease_until = Some(lease_until);
        self
    }

    /// The same ticket, one write later.
    pub(crate) fn touched(&self, now: i64) -> Ticket {
        let mut t = self.clone();
        t.version += 1;
        t.updated_at = now;
        t
    }

    fn to(&self, next: Status, now: i64) -> Result<Ticket, IllegalTransition> {
        if !self.status.can_become(next) {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        let mut t = self.touched(now);
        t.status = next;
        t.delivered = true;
        Ok(t)
    }

    /// A worker takes the ticket for one attempt, owning it until `lease_until`.
    pub fn claim(&self, now: i64, lease_until: i64) -> Result<Ticket, IllegalTransition> {
        let mut t = self.to(Status::Processing, now)?;
        t.attempts += 1;
        t.lease_until = Some(lease_until);
        t.next_attempt_at = None;
        Ok(t)
    }

    /// Put off without an attempt (breaker open, drain pacing): still
    /// `queued`, now due at `until`, so that a sweeper does not take a
    /// deferred ticket for one whose message was lost.
    pub fn postpone(&self, now: i64, until: i64) -> Result<Ticket, IllegalTransition> {
        if self.status != Status::Queued {
            return Err(IllegalTransition {
                from: self.status,
                to: Status::Queued,
            });
        }
        let mut t = self.touched(now);
        t.next_attempt_at = Some(until);
        t.delivered = true;
        Ok(t)
    }

    /// Re-enqueued by the sweeper: due now, so that it is swept again only
    /// if it waits another grace period (a queued ticket's next attempt, a
    /// processing ticket's long-expired lease, a terminal ticket's overdue
    /// notification, move to `now`). A ticket
    /// nothing had acted on is swept only once expired, and the worker
    /// fails an expired ticket before anything else: marking it delivered
    /// cannot make it run (see [`Ticket::park`]).
    pub fn swept(&self, now: i64) -> Result<Ticket, IllegalTransition> {
        let mut t = self.touched(now);
        match self.status {
            Status::Queued => t.next_attempt_at = Some(now),
            Status::Processing if self.lease_expired(now) => t.lease_until = Some(now),
            Status::Succeeded | Status::Failed if self.due_at().is_some() => {
                if let Some(e) = t.event.as_mut() {
                    if !e.sns_done {
                        e.next_sns_at = now;
                    }
                    if !e.webhook_done {
                        e.next_webhook_at = now;
                    }
                }
            }
            status => return Err(IllegalTransition::within(status)),
        }
        t.delivered = true;
        Ok(t)
    }

    /// A retryable failure: back to `queued` until `next_at`.
    pub fn retry_at(
        &self,
        now: i64,
        next_at: i64,
        last: Option<BackendResult>,
    ) -> Result<Ticket, IllegalTransition> {
        let mut t = self.to(Status::Queued, now)?;
        t.lease_until = None;
        t.next_attempt_at = Some(next_at);
        if last.is_some() {
            t.result = last;
        }
        Ok(t)
    }

    pub fn succeed(&self, now: i64, result: BackendResult) -> Result<Ticket, IllegalTransition> {
        let mut t = self.to(Status::Succeeded, now)?;
        t.lease_until = None;
        t.result = Some(result);
        Ok(t)
    }

    pub fn fail(
        &self,
        now: i64,
        error: TicketError,
        last: Option<BackendResult>,
    ) -> Result<Ticket, IllegalTransition> {
        let mut t = self.to(Status::Failed, now)?;
        t.lease_until = None;
        t.next_attempt_at = None;
        t.error = Some(error);
        if last.is_some() {
            t.result = last;
        }
        Ok(t)
    }

    /// Notification bookkeeping on a terminal ticket: same status, new version.
    pub fn with_notification(
        &self,
        now: i64,
        attempt: NotificationAttempt,
        event: PendingEvent,
    ) -> Ticket {
        let mut t = self.touched(now);
        let mut attempt = attempt;
        if let Some(e) = attempt.error.as_mut() {
            if e.len() > NOTIFICATION_ERROR_MAX {
                let end = e.floor_char_boundary(NOTIFICATION_ERROR_MAX - 3);
                e.truncate(end);
                e.push_str("...");
            }
        }
        t.notifications.push(attempt);
        t.event = Some(event);
        t
    }

    /// When a live worker should next act on this ticket: its next
    /// attempt, the end of its lease, or (never tried) its creation; once
    /// terminal, its next notification attempt (`None` when all are done).
    /// The sweeper re-enqueues tickets whose due time is long past: their
    /// message was lost (but see [`Ticket::park`]).
    pub fn due_at(&self) -> Option<i64> {
        match self.status {
            Status::Queued => Some(self.next_attempt_at.unwrap_or(self.created_at)),
            Status::Processing => Some(self.lease_until.unwrap_or(self.updated_at)),
            Status::Succeeded | Status::Failed => self.event.as_ref()?.next_due(),
        }
    }

    /// What the sweeper does with a ticket long past due that nothing has
    /// acted on: it may be the remains of a capture that answered 503 (a
    /// create that landed after its timeout and its undo, a process that
    /// died between the ticket and the message), whose client was not told
    /// it was accepted, so it must not be run. It is put aside until it
    /// expires (then swept, and failed as expired without a backend call);
    /// if its own message does come, the worker ignores the parked time.
    pub fn park(&self, now: i64) -> Result<Ticket, IllegalTransition> {
        let mut t = self.touched(now);
        match self.status {
            Status::Queued if !self.delivered => t.next_attempt_at = Some(self.expires_at),
            Status::Processing if !self.delivered => t.lease_until = Some(self.expires_at),
            status => return Err(IllegalTransition::within(status)),
        }
        Ok(t)
    }

    /// Whether the sweeper parked it: its recorded due time is then no
    /// schedule, and a worker that gets its message runs it now.
    pub fn is_parked(&self) -> bool {
        let parked = Some(self.expires_at);
        !self.delivered && (self.next_attempt_at == parked || self.lease_until == parked)
    }

    /// When stores drop the ticket: a day after it expired, so that a
    /// client can still read `failed/expired` (DynamoDB's TTL attribute).
    pub fn purge_at(&self) -> i64 {
        self.expires_at.saturating_add(RETENTION_AFTER_EXPIRY_MS)
    }

    pub fn lease_expired(&self, now: i64) -> bool {
        self.lease_until.is_none_or(|until| until <= now)
    }
}

#[cfg(test)]
#[path = "ticket_tests.rs"]
mod tests;
