//! Ticket changes as they happen in this process, for the event streams.
//!
//! Why: a client following its ticket (`GET /tickets/{id}/events`) should
//! hear of the terminal write at once, not at the next poll. In local mode
//! the worker that writes it runs in the same process, so the store is
//! wrapped ([`Watched`]) and every successful write wakes the streams of
//! that ticket. Only those: a stream registers its ticket's id, and a write
//! looks the id up, so ten thousand idle streams cost nothing per write.
//!
//! A change made elsewhere (the operator's tool, another Lambda instance)
//! wakes nobody; the streams also read the store on a timer, which is all
//! they have where the writer is another process (AWS mode).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::ports::{StoreError, TicketStore};
use crate::ticket::{Status, Ticket, TicketId};

/// Who is waiting on which ticket.
#[derive(Default)]
pub struct Changes {
    waiting: Mutex<HashMap<TicketId, Weak<Notify>>>,
}

/// A stream's registration: wakes on each change of its ticket while held.
pub struct Subscription {
    notify: Arc<Notify>,
    id: TicketId,
    changes: Arc<Changes>,
}

impl Subscription {
    /// Resolves at the next change written after this call (or one written
    /// since the last `changed` returned, which is kept as a permit).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiting = self.changes.lock();
        // Another stream of the same ticket may still hold it.
        if waiting.get(&self.id).is_some_and(|w| w.strong_count() <= 1) {
            waiting.remove(&self.id);
        }
    }
}

impl Changes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TicketId, Weak<Notify>>> {
        // A map of weak handles: nothing a panicking holder leaves broken.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(self: &Arc<Self>, id: TicketId) -> Subscription {
        let mut waiting = self.lock();
        let notify = match waiting.get(&id).and_then(Weak::upgrade) {
            Some(n) => n,
            None => {
                let n = Arc::new(Notify::new());
                waiting.insert(id, Arc::downgrade(&n));
                n
            }
        };
        Subscription {
            notify,
            id,
            changes: self.clone(),
        }
    }

    /// Wakes the streams of `id` (every one: `notify_waiters`, plus a
    /// permit for one between polls).
    pub fn changed(&self, id: &TicketId) {
        let notify = self.lock().get(id).and_then(Weak::upgrade);
        if let Some(n) = notify {
            n.notify_waiters();
            n.notify_one();
        }
    }

    /// Streams registered now (for `/health` and tests).
    pub fn watched(&self) -> usize {
        self.lock().len()
    }
}

/// A ticket store whose successful writes are announced on [`Changes`].
pub struct Watched {
    pub inner: Arc<dyn TicketStore>,
    pub changes: Arc<Changes>,
}

#[async_trait]
impl TicketStore for Watched {
    async fn create(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.inner.create(ticket).await?;
        self.changes.changed(&ticket.id);
        Ok(())
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.inner.get(id).await
    }

    async fn update(
        &self,
        next: &Ticket,
        expected_status: Status,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        self.inner
            .update(next, expected_status, expected_version)
            .await?;
        self.changes.changed(&next.id);
        Ok(())
    }

    async fn delete(&self, id: &TicketId, expected_version: u64) -> Result<(), StoreError> {
        self.inner.delete(id, expected_version).await?;
        self.changes.changed(id);
        Ok(())
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
        self.inner.overdue(before, limit).await
    }

    async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
        self.inner.oldest_due().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn wait(s: &Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), s.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_change_wakes_the_streams_of_its_ticket_only() {
        let changes = Arc::new(Changes::default());
        let (a, b) = (TicketId::new(), TicketId::new());
        let (sa, sa2, sb) = (
            changes.subscribe(a),
            changes.subscribe(a),
            changes.subscribe(b),
        );
        assert_eq!(changes.watched(), 2);
        // A change before the wait is kept (as a permit), not lost.
        changes.changed(&a);
        assert!(wait(&sa).await);
        let (woke_a, woke_a2, woke_b) = tokio::join!(wait(&sa), wait(&sa2), async {
            changes.changed(&a);
            wait(&sb).await
        });
        assert!(woke_a && woke_a2 && !woke_b);
        drop((sa, sa2));
        assert_eq!(
            changes.watched(),
            1,
            "the last stream of a ticket unregisters it"
        );
        drop(sb);
        assert_eq!(changes.watched(), 0);
    }
}
