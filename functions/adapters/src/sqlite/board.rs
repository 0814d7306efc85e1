//! The breaker board on the embedded file: the server's posted snapshots
//! (a row per group, replaced each health-cache period) and the tool's
//! reset requests (numbered by SQLite, the latest
//! [`RESETS_KEPT`] kept).

use async_trait::async_trait;
use failover_core::breaker::board::{BreakerBoard, Posted, ResetRequest, RESETS_KEPT};
use failover_core::ports::StoreError;
use rusqlite::params;

use super::{unavailable, SqliteStore};

#[async_trait]
impl BreakerBoard for SqliteStore {
    async fn post(&self, posts: &[Posted]) -> Result<(), StoreError> {
        let rows = posts
            .iter()
            .map(|p| {
                Ok((
                    p.group.clone(),
                    serde_json::to_string(&p.snapshot)?,
                    p.at_ms,
                ))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(unavailable)?;
        self.write(move |c| {
            c.execute("DELETE FROM breaker_posts", [])
                .map_err(unavailable)?;
            for (group, doc, at) in &rows {
                c.execute(
                    "INSERT INTO breaker_posts (grp, doc, at_ms) VALUES (?1, ?2, ?3)",
                    params![group, doc, at],
                )
                .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn posted(&self) -> Result<Vec<Posted>, StoreError> {
        let rows: Vec<(String, String, i64)> = self
            .read(|c| {
                let mut stmt = c
                    .prepare("SELECT grp, doc, at_ms FROM breaker_posts ORDER BY rowid")
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        rows.into_iter()
            .map(|(group, doc, at_ms)| {
                let snapshot = serde_json::from_str(&doc)
                    .map_err(|e| unavailable(format!("corrupt breaker post: {e}")))?;
                Ok(Posted {
                    group,
                    snapshot,
                    at_ms,
                })
            })
            .collect()
    }

    async fn request_reset(&self, r: &ResetRequest) -> Result<i64, StoreError> {
        let r = r.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO breaker_resets (grp, at_ms, by) VALUES (?1, ?2, ?3)",
                params![r.group, r.at_ms, r.by],
            )
            .map_err(unavailable)?;
            let id = c.last_insert_rowid();
            c.execute(
                "DELETE FROM breaker_resets WHERE id <= ?1",
                params![id - RESETS_KEPT],
            )
            .map_err(unavailable)?;
            Ok(id)
        })
        .await
    }

    async fn resets_after(&self, after: i64) -> Result<Vec<ResetRequest>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare("SELECT id, grp, at_ms, by FROM breaker_resets WHERE id > ?1 ORDER BY id")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![after], |r| {
                    Ok(ResetRequest {
                        id: r.get(0)?,
                        group: r.get(1)?,
                        at_ms: r.get(2)?,
                        by: r.get(3)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}
