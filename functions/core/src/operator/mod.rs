//! What an operator may do to tickets, and a client to its own: cancel a
//! queued ticket, run a failed one again.
//!
//! Both are compare-and-sets on the ticket like the worker's claim, so a
//! cancel racing a worker cannot both win: the cancel needs `queued` at the
//! version it read, the claim needs the same, and the loser sees the
//! winner's status on its next read (a cancelled ticket is terminal and is
//! never sent to the backend; a claimed one is `processing` and can no
//! longer be cancelled). Every action is recorded on the ticket (who, what,
//! when) and logged.
//!
//! After the write, a fresh message brings a worker: to notify at once
//! (cancel), or to run the ticket again (retry). If that send fails the
//! ticket is still right: it is due now, and the sweeper re-enqueues what
//! is long past due, so nothing waits for the message that did not go.

pub mod ports;

use serde::{Deserialize, Serialize};

use crate::attempt::with_event;
use crate::message::QueueMessage;
use crate::ports::{Clock, Priority, Queue, StoreError, TicketStore};
use crate::ticket::{ErrorKind, Status, Ticket, TicketError, TicketId};

/// One action on a ticket, kept on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Epoch ms.
    pub at: i64,
    /// Who: `client`, `client:<caller>`, or the operator's name.
    pub by: String,
    pub what: ActionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Cancel,
    Retry,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Cancel => "cancel",
            ActionKind::Retry => "retry",
        }
    }
}

/// Which failed tickets a retry may run again. Exhausted, expired and
/// unroutable ones always may (the backend or the route was broken, and
/// may be fixed); a rejection was the backend's definitive answer and a
/// cancellation someone's decision, so those only when the operator says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryScope {
    pub rejected: bool,
    pub cancelled: bool,
}

impl RetryScope {
    fn allows(self, kind: Option<ErrorKind>) -> bool {
        match kind {
            Some(ErrorKind::Rejected) => self.rejected,
            Some(ErrorKind::Cancelled) => self.cancelled,
            Some(_) => true,
            None => false,
        }
    }
}

/// Why an action was not taken.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Refused {
    #[error("no ticket {0}")]
    NotFound(TicketId),
    #[error("ticket {id} is {status}: only a queued ticket can be cancelled")]
    NotCancellable { id: TicketId, status: &'static str },
    #[error("ticket {id} is {status}{kind}: {why}")]
    NotRetryable {
        id: TicketId,
        status: &'static str,
        /// ` (kind)` for a failed ticket.
        kind: String,
        why: &'static str,
    },
    #[error("ticket {0} kept changing; try again")]
    Busy(TicketId),
    #[error("{0}")]
    Store(StoreError),
}

/// The ports an action needs.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub tickets: &'a dyn TicketStore,
    pub queue: &'a dyn Queue,
    pub clock: &'a dyn Clock,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub ticket: Ticket,
    /// Whether the message that brings a worker went (else the sweeper
    /// re-enqueues the ticket after its grace period).
    pub enqueued: bool,
}

/// Compare-and-set retries when the ticket moves under us (a worker's
/// notification bookkeeping, a sweep): each re-reads and re-decides.
const RACES: usize = 5;

impl Ticket {
    /// `queued -> failed/cancelled`, with its terminal event built.
    pub fn cancel(&self, now: i64, by: &str) -> Result<Ticket, Refused> {
        if self.status != Status::Queued {
            return Err(Refused::NotCancellable {
                id: self.id,
                status: self.status.as_str(),
            });
        }
        let mut t = self.touched(now);
        t.status = Status::Failed;
        t.next_attempt_at = None;
        t.error = Some(TicketError {
            kind: ErrorKind::Cancelled,
            message: format!("cancelled by {by}"),
        });
        t.actions.push(Action {
            at: now,
            by: by.into(),
            what: ActionKind::Cancel,
        });
        Ok(with_event(t, now))
    }

    /// `failed -> queued` with a fresh attempt budget and, if it expired,
    /// a fresh time to live: the same ticket id (so the backend sees the
    /// same `Idempotency-Key`), its last outcome and event cleared, due now.
    pub fn rerun(
        &self,
        now: i64,
        ttl_ms: i64,
        by: &str,
        scope: RetryScope,
    ) -> Result<Ticket, Refused> {
        let kind = self.error.as_ref().map(|e| e.kind);
        let why = match (self.status, scope.allows(kind)) {
            (Status::Failed, true) => None,
            (Status::Failed, false) => Some(match kind {
                Some(ErrorKind::Cancelled) => "it was cancelled (--include-cancelled to run it)",
                _ => "the backend rejected it (--include-rejected to send it again)",
            }),
            (Status::Succeeded, _) => Some("it already has its answer"),
            _ => Some("only a failed ticket can be retried"),
        };
        if let Some(why) = why {
            return Err(Refused::NotRetryable {
                id: self.id,
                status: self.status.as_str(),
                kind: kind.map_or(String::new(), |k| format!(" ({})", k.as_str())),
                why,
            });
        }
        let mut t = self.touched(now);
        t.status = Status::Queued;
        t.attempts = 0;
        t.runs += 1;
        t.error = None;
        t.result = None;
        t.event = None;
        t.lease_until = None;
        t.next_attempt_at = Some(now);
        t.expires_at = t.expires_at.max(now.saturating_add(ttl_ms));
        t.delivered = true;
        t.actions.push(Action {
            at: now,
            by: by.into(),
            what: ActionKind::Retry,
        });
        Ok(t)
    }
}

/// Cancels a queued ticket.
pub async fn cancel(s: Stores<'_>, id: &TicketId, by: &str) -> Result<Done, Refused> {
    act(s, id, ActionKind::Cancel, |t, now| t.cancel(now, by)).await
}

/// Runs a failed ticket again.
pub async fn retry(
    s: Stores<'_>,
    id: &TicketId,
    by: &str,
    ttl_ms: i64,
    scope: RetryScope,
) -> Result<Done, Refused> {
    act(s, id, ActionKind::Retry, |t, now| {
        t.rerun(now, ttl_ms, by, scope)
    })
    .await
}

async fn act(
    s: Stores<'_>,
    id: &TicketId,
    what: ActionKind,
    change: impl Fn(&Ticket, i64) -> Result<Ticket, Refused>,
) -> Result<Done, Refused> {
    for _ in 0..RACES {
        let ticket = s
            .tickets
            .get(id)
            .await
            .map_err(Refused::Store)?
            .ok_or(Refused::NotFound(*id))?;
        let next = change(&ticket, s.clock.now_ms())?;
        match s.tickets.update(&next, ticket.status, ticket.version).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(Refused::Store(e)),
        }
        let by = next.actions.last().map_or("", |a| a.by.as_str());
        tracing::info!(ticket_id = %id, action = what.as_str(), by, "operator action");
        let enqueued = bring_worker(s, &next).await;
        return Ok(Done {
            ticket: next,
            enqueued,
        });
    }
    Err(Refused::Busy(*id))
}

async fn bring_worker(s: Stores<'_>, t: &Ticket) -> bool {
    let body = QueueMessage::new(t.id).to_body();
    let priority = Priority {
        lane: t.request.lane,
        since_ms: s.clock.now_ms(),
    };
    match s
        .queue
        .send(&body, priority, std::time::Duration::ZERO)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(ticket_id = %t.id, error = %e, "message not sent: the sweeper will re-enqueue the ticket");
            false
        }
    }
}

#[cfg(test)]
mod tests;
