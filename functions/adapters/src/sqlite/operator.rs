//! The operator's ports on the embedded file: a scan of the tickets, the
//! dead-letter table (listed, and moved back to the queue), and the drills
//! (a row per scope, which the server reads once per health-cache period).
//!
//! The tool opens the same file as the running server (WAL lets both read
//! and write; SQLite serialises the writes), so a redrive is one
//! transaction: a dead letter is in the queue or in the table, never in
//! both and never in neither.

use async_trait::async_trait;
use failover_core::drill::{Drill, DrillStore, Scope};
use failover_core::lane::Lane;
use failover_core::operator::ports::{DeadLetter, DeadLetters, TicketPage, TicketScan};
use failover_core::ports::{QueueError, StoreError};
use failover_core::ticket::Ticket;
use rusqlite::params;

use super::{unavailable, SqliteStore};

fn queue_err(e: StoreError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

#[async_trait]
impl TicketScan for SqliteStore {
    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<TicketPage, StoreError> {
        let now = self.now();
        let after = cursor.unwrap_or_default();
        let docs: Vec<(String, String)> = self
            .read(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT id, doc FROM tickets WHERE id > ?1 AND purge_at > ?2
                         ORDER BY id LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![after, now, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        let next = (docs.len() == limit && limit > 0)
            .then(|| docs.last().map(|(id, _)| id.clone()))
            .flatten();
        let tickets = docs
            .iter()
            .map(|(_, doc)| {
                serde_json::from_str::<Ticket>(doc)
                    .map_err(|e| unavailable(format!("corrupt row: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(TicketPage { tickets, next })
    }
}

#[async_trait]
impl DeadLetters for SqliteStore {
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, body, reason, receive_count, lane, sent_at FROM dead_letters
                     ORDER BY dead_at, id LIMIT ?1",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![max as i64], |r| {
                    Ok(DeadLetter {
                        message_id: r.get(0)?,
                        body: r.get(1)?,
                        reason: Some(r.get(2)?),
                        receive_count: r.get(3)?,
                        lane: Lane::ALL
                            .get(r.get::<_, i64>(4)? as usize)
                            .copied()
                            .unwrap_or_default(),
                        sent_at: Some(r.get(5)?),
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
        .map_err(queue_err)
    }

    async fn redrive(&self, max: usize) -> Result<u64, QueueError> {
        let now = self.now();
        let moved = self
            .write(move |c| {
                // Fresh messages in their lanes, waiting from now, visible
                // at once; the oldest dead first.
                let picked = "SELECT id FROM dead_letters ORDER BY dead_at, id LIMIT ?2";
                let n = c
                    .execute(
                        &format!(
                            "INSERT INTO queue (id, body, sent_at, visible_at, lane, since_at)
                             SELECT lower(hex(randomblob(16))), body, ?1, ?1, lane, ?1
                             FROM dead_letters WHERE id IN ({picked})"
                        ),
                        params![now, max as i64],
                    )
                    .map_err(unavailable)?;
                c.execute(
                    &format!("DELETE FROM dead_letters WHERE id IN ({picked})"),
                    params![now, max as i64],
                )
                .map_err(unavailable)?;
                Ok(n as u64)
            })
            .await
            .map_err(queue_err)?;
        if moved > 0 {
            self.arrivals.notify_waiters();
        }
        Ok(moved)
    }
}

#[async_trait]
impl DrillStore for SqliteStore {
    async fn drills(&self) -> Result<Vec<Drill>, StoreError> {
        let docs: Vec<String> = self
            .read(|c| {
                let mut stmt = c.prepare("SELECT doc FROM drills").map_err(unavailable)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        docs.iter()
            .map(|d| {
                serde_json::from_str(d).map_err(|e| unavailable(format!("corrupt drill: {e}")))
            })
            .collect()
    }

    async fn start(&self, drill: &Drill) -> Result<(), StoreError> {
        let (scope, now) = (drill.scope.key(), self.now());
        let doc = serde_json::to_string(drill).map_err(unavailable)?;
        self.write(move |c| {
            // Ended drills go; this one replaces any of its scope.
            let ended = c
                .prepare("SELECT scope, doc FROM drills")
                .and_then(|mut stmt| {
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                    rows.collect::<Result<Vec<_>, _>>()
                });
            for (key, old) in ended.map_err(unavailable)? {
                let over = serde_json::from_str::<Drill>(&old).map_or(true, |d| d.until_ms <= now);
                if over {
                    c.execute("DELETE FROM drills WHERE scope = ?1", params![key])
                        .map_err(unavailable)?;
                }
            }
            c.execute(
                "INSERT OR REPLACE INTO drills (scope, doc) VALUES (?1, ?2)",
                params![scope, doc],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn stop(&self, scope: Option<&Scope>) -> Result<usize, StoreError> {
        let key = scope.map(Scope::key);
        self.write(move |c| {
            match &key {
                Some(k) => c.execute("DELETE FROM drills WHERE scope = ?1", params![k]),
                None => c.execute("DELETE FROM drills", []),
            }
            .map_err(unavailable)
        })
        .await
    }
}
