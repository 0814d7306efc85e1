//! The embedded queue: SQS semantics on a SQLite table.

use std::time::Duration;

use async_trait::async_trait;
use failover_core::lane::Lane;
use failover_core::ports::{Delivery, Priority, Queue, QueueError, QueueStats, StoreError};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::SqliteStore;

fn queue_err(e: StoreError) -> QueueError {
    match e {
        StoreError::Conflict => QueueError::StaleReceipt,
        StoreError::Unavailable(m) => QueueError::Unavailable(m),
    }
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A row's lane (its rank; anything else is `normal`) and waiting time.
fn priority(rank: i64, since_ms: i64) -> Priority {
    Priority {
        lane: Lane::ALL.get(rank as usize).copied().unwrap_or_default(),
        since_ms,
    }
}

/// How often a long poll looks again for messages whose delay ran out
/// (new messages wake it at once).
const POLL_EVERY: Duration = Duration::from_millis(50);

impl SqliteStore {
    async fn receive_now(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let now = self.now();
        let hidden_until = now + visibility.as_millis() as i64;
        let max_receives = self.options.max_receives;
        let ageing = (self.options.lane_ageing.as_millis() as i64).max(1);
        self.write(move |tx| {
            let mut out = Vec::new();
            {
                // Highest served lane first (`failover_core::lane::served_rank`).
                let mut pick = tx
                    .prepare(
                        "SELECT seq, id, body, receive_count, sent_at, lane, since_at FROM queue
                         WHERE visible_at <= ?1
                         ORDER BY MAX(0, lane - MIN(2, MAX(0, ?1 - since_at) / ?3)), visible_at, seq
                         LIMIT ?2",
                    )
                    .map_err(sql_err)?;
                let rows = pick
                    .query_map(params![now, max as i64, ageing], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, u32>(3)?,
                            r.get::<_, i64>(4)?,
                            priority(r.get(5)?, r.get(6)?),
                        ))
                    })
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                for (seq, id, body, count, sent_at, priority) in rows {
                    if count >= max_receives {
                        // Redrive: like SQS, on the receive after the limit.
                        tx.execute(
                            "INSERT OR REPLACE INTO dead_letters
                             (id, body, reason, receive_count, sent_at, dead_at, lane, since_at)
                             VALUES (?1, ?2, 'max receives exceeded', ?3, ?4, ?5, ?6, ?7)",
                            params![
                                id,
                                body,
                                count,
                                sent_at,
                                now,
                                priority.lane.rank(),
                                priority.since_ms
                            ],
                        )
                        .map_err(sql_err)?;
                        tx.execute("DELETE FROM queue WHERE seq = ?1", params![seq])
                            .map_err(sql_err)?;
                        continue;
                    }
                    let receipt = format!("{seq}:{}", Uuid::new_v4().simple());
                    tx.execute(
                        "UPDATE queue SET visible_at = ?2, receive_count = receive_count + 1,
                         receipt = ?3 WHERE seq = ?1",
                        params![seq, hidden_until, receipt],
                    )
                    .map_err(sql_err)?;
                    out.push(Delivery {
                        message_id: id,
                        receipt,
                        body,
                        receive_count: count + 1,
                        priority,
                    });
                }
            }
            Ok(out)
        })
        .await
        .map_err(queue_err)
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn send(
        &self,
        body: &str,
        priority: Priority,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let id = Uuid::new_v4().to_string();
        let (body, now) = (body.to_string(), self.now());
        let visible_at = now + delay.as_millis() as i64;
        let row_id = id.clone();
        let (lane, since) = (priority.lane.rank(), priority.since_ms);
        self.write(move |c| {
            c.execute(
                "INSERT INTO queue (id, body, sent_at, visible_at, lane, since_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row_id, body, now, visible_at, lane, since],
            )
            .map_err(sql_err)
        })
        .await
        .map_err(queue_err)?;
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
            // Register interest before looking, so a send in between is seen.
            let arrived = self.arrivals.notified();
            let got = self.receive_now(max, visibility).await?;
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            let _ = tokio::time::timeout(left.min(POLL_EVERY), arrived).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let receipt = delivery.receipt.clone();
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM queue WHERE receipt = ?1", params![receipt])
                .map_err(sql_err)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
        .map_err(queue_err)
    }

    async fn defer(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let receipt = delivery.receipt.clone();
        let visible_at = self.now() + delay.as_millis() as i64;
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE queue SET visible_at = ?2 WHERE receipt = ?1",
                    params![receipt, visible_at],
                )
                .map_err(sql_err)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
        .map_err(queue_err)
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (receipt, reason, now) = (delivery.receipt.clone(), reason.to_string(), self.now());
        self.write(move |tx| {
            let row: Option<(i64, String, String, u32, i64, i64, i64)> = tx
                .query_row(
                    "SELECT seq, id, body, receive_count, sent_at, lane, since_at FROM queue
                     WHERE receipt = ?1",
                    params![receipt],
                    |r| {
                        let fields = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                        Ok((
                            fields.0,
                            fields.1,
                            fields.2,
                            fields.3,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql_err)?;
            let Some((seq, id, body, count, sent_at, lane, since)) = row else {
                return Err(StoreError::Conflict);
            };
            tx.execute(
                "INSERT OR REPLACE INTO dead_letters
                 (id, body, reason, receive_count, sent_at, dead_at, lane, since_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, body, reason, count, sent_at, now, lane, since],
            )
            .map_err(sql_err)?;
            tx.execute("DELETE FROM queue WHERE seq = ?1", params![seq])
                .map_err(sql_err)
                .map(|_| ())
        })
        .await
        .map_err(queue_err)
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = self.now();
        self.read(move |c| {
            let dead: i64 = c
                .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
                .map_err(sql_err)?;
            let mut per_lane = c
                .prepare(
                    "SELECT lane, visible_at <= ?1, COUNT(*), MIN(sent_at) FROM queue
                     GROUP BY lane, visible_at <= ?1",
                )
                .map_err(sql_err)?;
            let groups = per_lane
                .query_map(params![now], |r| {
                    let lane = priority(r.get(0)?, 0).lane;
                    Ok((
                        lane,
                        r.get::<_, bool>(1)?,
                        r.get::<_, i64>(2)? as u64,
                        r.get(3)?,
                    ))
                })
                .map_err(sql_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_err)?;
            Ok(QueueStats::of(groups.into_iter(), dead as u64, now))
        })
        .await
        .map_err(queue_err)
    }
}
