//! Tickets, idempotency records and the publication log on SQLite.
//!
//! Each conditional write is a single `UPDATE ... WHERE status = ? AND
//! version = ?` (or an `INSERT` on a primary key): SQLite applies it
//! atomically, and zero changed rows means the condition failed.

use async_trait::async_trait;
use failover_core::ports::{
    EventPublisher, IdemRecord, IdempotencyStore, NotifyError, StoreError, TicketStore, TopicEvent,
};
use failover_core::ticket::{Status, Ticket, TicketId};
use rusqlite::{params, OptionalExtension};

use super::{parse_ids, unavailable, SqliteStore};

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(unavailable)
}

fn decode<T: serde::de::DeserializeOwned>(doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| unavailable(format!("corrupt row: {e}")))
}

fn changed(n: usize) -> Result<(), StoreError> {
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    )
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn create(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let (id, status, version, purge, due) = (
            ticket.id.to_string(),
            ticket.status.as_str(),
            ticket.version as i64,
            ticket.purge_at(),
            ticket.due_at(),
        );
        let doc = encode(ticket)?;
        let now = self.now();
        self.write(move |c| {
            // An expired row with this id may linger; it does not count.
            c.execute(
                "DELETE FROM tickets WHERE id = ?1 AND purge_at <= ?2",
                params![id, now],
            )
            .map_err(unavailable)?;
            match c.execute(
                "INSERT INTO tickets (id, status, version, purge_at, due_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, status, version, purge, due, doc],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_constraint(&e) => Err(StoreError::Conflict),
                Err(e) => Err(unavailable(e)),
            }
        })
        .await
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let id = id.to_string();
        let now = self.now();
        let doc: Option<String> = self
            .read(move |c| {
                c.query_row(
                    "SELECT doc FROM tickets WHERE id = ?1 AND purge_at > ?2",
                    params![id, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        doc.as_deref().map(decode).transpose()
    }

    async fn update(
        &self,
        next: &Ticket,
        expected_status: Status,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let (id, status, version, purge, due) = (
            next.id.to_string(),
            next.status.as_str(),
            next.version as i64,
            next.purge_at(),
            next.due_at(),
        );
        let doc = encode(next)?;
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE tickets SET status = ?2, version = ?3, purge_at = ?4, due_at = ?5, doc = ?6
                     WHERE id = ?1 AND status = ?7 AND version = ?8",
                    params![
                        id,
                        status,
                        version,
                        purge,
                        due,
                        doc,
                        expected_status.as_str(),
                        expected_version as i64
                    ],
                )
                .map_err(unavailable)?;
            changed(n)
        })
        .await
    }

    async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
        let now = self.now();
        self.read(move |c| {
            c.query_row(
                "SELECT MIN(due_at) FROM tickets WHERE due_at IS NOT NULL AND purge_at > ?1
                 AND status IN ('queued', 'processing')",
                params![now],
                |r| r.get(0),
            )
            .map_err(unavailable)
        })
        .await
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
        let now = self.now();
        let ids: Vec<String> = self
            .read(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT id FROM tickets WHERE due_at IS NOT NULL AND due_at < ?1
                         AND purge_at > ?2 ORDER BY due_at LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![before, now, limit as i64], |r| r.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        parse_ids(&ids)
    }

    async fn delete(&self, id: &TicketId, expected_version: u64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c
                .execute(
                    "DELETE FROM tickets WHERE id = ?1 AND version = ?2",
                    params![id, expected_version as i64],
                )
                .map_err(unavailable)?;
            changed(n)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn insert(&self, record: &IdemRecord) -> Result<(), StoreError> {
        let (key, version, expires) =
            (record.key.clone(), record.version as i64, record.expires_at);
        let doc = encode(record)?;
        let now = self.now();
        self.write(move |c| {
            c.execute(
                "DELETE FROM idempotency WHERE key = ?1 AND expires_at <= ?2",
                params![key, now],
            )
            .map_err(unavailable)?;
            match c.execute(
                "INSERT INTO idempotency (key, version, expires_at, doc) VALUES (?1, ?2, ?3, ?4)",
                params![key, version, expires, doc],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_constraint(&e) => Err(StoreError::Conflict),
                Err(e) => Err(unavailable(e)),
            }
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let key = key.to_string();
        let now = self.now();
        let doc: Option<String> = self
            .read(move |c| {
                c.query_row(
                    "SELECT doc FROM idempotency WHERE key = ?1 AND expires_at > ?2",
                    params![key, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        doc.as_deref().map(decode).transpose()
    }

    async fn replace(&self, record: &IdemRecord, expected_version: u64) -> Result<(), StoreError> {
        let (key, version, expires) =
            (record.key.clone(), record.version as i64, record.expires_at);
        let doc = encode(record)?;
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE idempotency SET version = ?2, expires_at = ?3, doc = ?4
                     WHERE key = ?1 AND version = ?5",
                    params![key, version, expires, doc, expected_version as i64],
                )
                .map_err(unavailable)?;
            changed(n)
        })
        .await
    }
}

/// Local mode's topic: the publication is logged and kept in the file,
/// with what an email and an SMS subscriber would get.
#[async_trait]
impl EventPublisher for SqliteStore {
    async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError> {
        let e = event.clone();
        let now = self.now();
        let (subject, email, sms) = match e.notice.clone() {
            Some(n) => (Some(n.subject), Some(n.email), Some(n.sms)),
            None => (None, None, None),
        };
        tracing::info!(
            event_id = %e.event_id,
            event_type = %e.event_type,
            status = %e.status,
            sms = sms.as_deref().unwrap_or(""),
            "topic publication (local mode: recorded in the store)"
        );
        self.write(move |c| {
            // The same event published twice (a retried delivery) is one row.
            c.execute(
                "INSERT OR IGNORE INTO publications
                   (event_id, event_type, status, body, published_at, subject, email, sms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.event_id,
                    e.event_type,
                    e.status,
                    e.body,
                    now,
                    subject,
                    email,
                    sms
                ],
            )
            .map_err(unavailable)
            .map(|_| ())
        })
        .await
        .map_err(|e| NotifyError(e.to_string()))
    }
}
