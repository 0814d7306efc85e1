//! The sweeper: re-enqueues tickets whose message was lost.
//!
//! A message can vanish after a worker has seen its ticket (a stale
//! acknowledgement deletes a redelivery, a message is redriven while its
//! ticket still waits). A
//! non-terminal ticket whose due time — next attempt, end of lease, or
//! creation — passed more than [`GRACE`] ago has nobody working on it; the
//! sweeper sends it a fresh message, then marks the ticket due now, so a
//! ticket stuck behind a backlog deeper than [`GRACE`] gets one more message
//! per grace period, not one per sweep. A duplicate is harmless: the
//! worker's compare-and-set lets one delivery act and acknowledges the
//! others.
//!
//! A ticket no worker has seen is different: it may be what a capture that
//! answered 503 left behind (a process that died between the ticket and the
//! message, a create that landed after its timeout and its undo). Its
//! client was not told it was accepted, so it is never re-enqueued while it
//! can still run: it is parked until it expires ([`Ticket::park`]), then
//! swept so that the worker closes it as `failed/expired`.
//!
//! [`Ticket::park`]: failover_core::ticket::Ticket::park

use std::time::Duration;

use failover_core::message::QueueMessage;
use failover_core::ports::{Priority, StoreError};

use crate::Worker;

/// How long past its due time a ticket may wait before it counts as lost.
/// Generous, so that a backlog (tickets due but not yet reached) is not
/// mistaken for loss and doubled.
pub const GRACE: Duration = Duration::from_secs(15 * 60);

/// Tickets re-enqueued per sweep at most.
pub const BATCH: usize = 500;

impl Worker {
    /// One sweep; the number of tickets re-enqueued.
    pub async fn sweep(&self, grace: Duration) -> Result<usize, StoreError> {
        let now = self.deps.clock.now_ms();
        let before = now - grace.as_millis() as i64;
        let lost = self.deps.tickets.overdue(before, BATCH).await?;
        let mut sent = 0;
        for id in lost {
            let Some(ticket) = self.deps.tickets.get(&id).await? else {
                continue;
            };
            if !ticket.delivered && now < ticket.expires_at {
                // Perhaps a capture that answered 503: never run it.
                let Ok(parked) = ticket.park(now) else {
                    continue;
                };
                let parking = self
                    .deps
                    .tickets
                    .update(&parked, ticket.status, ticket.version);
                if let Err(e @ StoreError::Unavailable(_)) = parking.await {
                    tracing::warn!(ticket_id = %id, error = %e, "could not park the ticket");
                }
                continue;
            }
            // Moved on since the index was read (claimed, finished): skip.
            let Ok(marked) = ticket.swept(now) else {
                continue;
            };
            let body = QueueMessage::new(id).to_body();
            let priority = Priority {
                lane: ticket.request.lane,
                since_ms: ticket.created_at,
            };
            if let Err(e) = self.deps.queue.send(&body, priority, Duration::ZERO).await {
                tracing::error!(ticket_id = %id, error = %e, "could not re-enqueue");
                continue;
            }
            tracing::warn!(ticket_id = %id, "ticket had no live message: re-enqueued");
            sent += 1;
            // If this loses a race, the ticket moved on: nothing to mark.
            let marking = self
                .deps
                .tickets
                .update(&marked, ticket.status, ticket.version);
            if let Err(e @ StoreError::Unavailable(_)) = marking.await {
                tracing::warn!(ticket_id = %id, error = %e, "could not mark the ticket swept");
            }
        }
        Ok(sent)
    }
}
