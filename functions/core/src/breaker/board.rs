//! The board: how the operator's tool sees and resets breakers that live in
//! a server's memory (local mode).
//!
//! Why: the tool is another process, and local mode keeps each breaker in
//! process (a mutex away from every request, no store write per call). So
//! the server posts each group's snapshot on the board once per
//! health-cache period, and takes the resets the tool leaves there in the
//! same round. The tool's view is then at most one period old, and a reset
//! lands within one period; neither needs a network port. A fleet's
//! breakers need no board: the tool reads and writes their shared record
//! through the same gate code ([`super::Breaker::observe`], `reset`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::HealthGates;
use crate::ports::StoreError;

/// One group's breaker as a server last posted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posted {
    pub group: String,
    /// The [`super::BreakerSnapshot`], as `/health` shows it.
    pub snapshot: serde_json::Value,
    pub at_ms: i64,
}

/// A reset the tool asked for: of one group, or of every group (`None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetRequest {
    /// Given by the board, increasing: what a server has taken so far.
    pub id: i64,
    pub group: Option<String>,
    pub at_ms: i64,
    pub by: String,
}

#[async_trait]
pub trait BreakerBoard: Send + Sync {
    /// Replaces what is posted with `posts`.
    async fn post(&self, posts: &[Posted]) -> Result<(), StoreError>;
    async fn posted(&self) -> Result<Vec<Posted>, StoreError>;
    /// Leaves a reset (its `id` is ignored: the board numbers it) and
    /// returns its id. Only the latest few are kept.
    async fn request_reset(&self, r: &ResetRequest) -> Result<i64, StoreError>;
    /// The resets of id above `after`, oldest first.
    async fn resets_after(&self, after: i64) -> Result<Vec<ResetRequest>, StoreError>;
}

/// How many reset requests a board keeps (a server takes them within a
/// period; the rest is history).
pub const RESETS_KEPT: i64 = 100;

/// The server's side, one round per health-cache period.
pub struct Tender<'a> {
    pub board: &'a dyn BreakerBoard,
    pub gates: &'a HealthGates,
}

impl Tender<'_> {
    /// The last reset already on the board when the server starts: older
    /// ones were for a process that is gone (and a new breaker is closed).
    pub async fn start(&self) -> Result<i64, StoreError> {
        let all = self.board.resets_after(i64::MIN).await?;
        Ok(all.last().map_or(i64::MIN, |r| r.id))
    }

    /// Applies the resets after `seen`, then posts every group's snapshot
    /// taken at `now_ms`; returns the last reset seen.
    pub async fn round(&self, seen: i64, now_ms: i64) -> Result<i64, StoreError> {
        let mut last = seen;
        for r in self.board.resets_after(seen).await? {
            for (group, gate) in self.gates.all() {
                if r.group.as_ref().is_none_or(|g| g == group) {
                    gate.reset().await?;
                    tracing::warn!(group, by = r.by, "breaker reset by the operator");
                }
            }
            last = r.id;
        }
        let mut posts = Vec::new();
        for (group, gate) in self.gates.all() {
            posts.push(Posted {
                group: group.clone(),
                snapshot: serde_json::to_value(gate.snapshot().await)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
                at_ms: now_ms,
            });
        }
        self.board.post(&posts).await?;
        Ok(last)
    }
}
