//! What the edges read through the engine: tickets, the breakers, the
//! queue and the routes, and the one change a client may make besides
//! submitting: cancelling its queued ticket. The HTTP handlers talk to the
//! engine only (they never reach into its ports), so a change of store or
//! of breaker layout stays behind this one service.

use crate::breaker::BreakerSnapshot;
use crate::engine::Engine;
use crate::operator::{self, Done, Refused, Stores};
use crate::ports::{QueueStats, StoreError};
use crate::route::Route;
use crate::ticket::{Ticket, TicketId};

impl Engine {
    /// A ticket as the store has it now.
    pub async fn ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.deps().tickets.get(id).await
    }

    /// Cancels a queued ticket on behalf of `by` (see [`crate::operator`]).
    pub async fn cancel(&self, id: &TicketId, by: &str) -> Result<Done, Refused> {
        let deps = self.deps();
        let stores = Stores {
            tickets: deps.tickets.as_ref(),
            queue: deps.queue.as_ref(),
            clock: deps.clock.as_ref(),
        };
        operator::cancel(stores, id, by).await
    }

    /// Each breaker group and its breaker's state, in the routes' order.
    pub async fn breakers(&self) -> Vec<(String, BreakerSnapshot)> {
        let mut out = Vec::new();
        for (group, gate) in self.deps().health.all() {
            out.push((group.clone(), gate.snapshot().await));
        }
        out
    }

    /// The queue's counts, and the age of its oldest waiting request: the
    /// queue's own, or where it cannot tell (SQS publishes it only to
    /// CloudWatch), how long the longest-waiting ticket has been due.
    pub async fn backlog(&self) -> Result<QueueStats, String> {
        let deps = self.deps();
        let mut stats = deps.queue.stats().await.map_err(|e| e.to_string())?;
        if stats.oldest_age_ms.is_none() {
            if let Ok(Some(due)) = deps.tickets.oldest_due().await {
                stats.oldest_age_ms = Some((deps.clock.now_ms() - due).max(0) as u64);
            }
        }
        Ok(stats)
    }

    pub fn routes(&self) -> &[std::sync::Arc<Route>] {
        self.deps().routes.routes()
    }
}
