//! The views of a breaker group's record: [`VIEW_COPIES`] items,
//! `H#view#<k>` (or `H#view#<k>#<group>`), each holding the record as a
//! reporter last read it; a view is published to all of them at once.
//!
//! Why copies: a large fleet reads its breaker every `HEALTH_CACHE_MS`, and
//! one item serves at most 3,000 read units per second (6,000 eventually
//! consistent reads of up to 4 KB): 10,000 instances reading one item each
//! second would be throttled. Each instance reads one copy picked at
//! random, eventually consistent (half a unit), so the copies share the
//! reads; the reporters of a sampled fleet keep them fresh. A copy is
//! replaced only by a view of a later `seq`, so a slow writer never puts
//! an older view back.

use aws_sdk_dynamodb::types::AttributeValue;
use failover_core::breaker::rules::{BreakerState, Bucket};
use failover_core::breaker::store::{HealthRecord, View};
use failover_core::ports::StoreError;
use serde::{Deserialize, Serialize};

use super::dynamodb::{conditional, encode, n, s};
use super::env::TABLE_KEY;
use super::health::GroupHealth;
use super::unavailable;

/// How many copies each group's view has: reads of up to 8 x 6,000 = 48,000
/// instances per second.
pub const VIEW_COPIES: usize = 8;

fn view_key(copy: usize, group_suffix: &str) -> String {
    format!("H#view#{copy}{group_suffix}")
}

/// A view as stored: the window as rows of numbers, only its non-empty
/// slots, to stay small (most reads are of these).
#[derive(Serialize, Deserialize)]
struct Stored {
    state: Option<BreakerState>,
    seq: u64,
    taken_ms: i64,
    /// `[second, calls, errors, slow, busy_ms, refreshes]`
    window: Vec<(i64, u32, u32, u32, u64, u32)>,
}

/// A view's largest size: key (as the record's), state, and one row per
/// window second.
pub fn view_bytes(window_s: i64) -> usize {
    const BASE: usize = 900;
    const ROW: usize = 6 + 20 + 4 * 11 + 21;
    BASE + ROW * window_s.max(1) as usize
}

fn encode_view(v: &View) -> Result<String, StoreError> {
    encode(&Stored {
        state: v.record.state.clone(),
        seq: v.record.seq,
        taken_ms: v.taken_ms,
        window: v
            .record
            .window
            .iter()
            .filter(|b| **b != Bucket::default())
            .map(|b| (b.second, b.calls, b.errors, b.slow, b.busy_ms, b.refreshes))
            .collect(),
    })
}

fn decode_view(doc: &str) -> Result<View, StoreError> {
    let v: Stored = serde_json::from_str(doc)
        .map_err(|e| StoreError::Unavailable(format!("corrupt health view: {e}")))?;
    let window = v
        .window
        .into_iter()
        .map(|(second, calls, errors, slow, busy_ms, refreshes)| Bucket {
            second,
            calls,
            errors,
            slow,
            busy_ms,
            refreshes,
        })
        .collect();
    Ok(View {
        record: HealthRecord {
            state: v.state,
            window,
            seq: v.seq,
        },
        taken_ms: v.taken_ms,
    })
}

impl GroupHealth {
    pub(super) async fn read_copy(&self) -> Result<Option<View>, StoreError> {
        let out = self
            .store
            .client
            .get_item()
            .table_name(&self.store.table)
            .key(TABLE_KEY, s(view_key(self.copy, &self.suffix)))
            .consistent_read(false)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item.as_ref().and_then(|i| i.get("view")) {
            Some(AttributeValue::S(doc)) => decode_view(doc).map(Some),
            _ => Ok(None),
        }
    }

    /// Writes `view` to every copy at once.
    pub(super) async fn publish_copy(&self, view: &View) -> Result<(), StoreError> {
        let doc = encode_view(view)?;
        let mut writes = tokio::task::JoinSet::new();
        for copy in 0..VIEW_COPIES {
            let put = self
                .store
                .client
                .put_item()
                .table_name(&self.store.table)
                .item(TABLE_KEY, s(view_key(copy, &self.suffix)))
                .item("view", s(doc.clone()))
                .item("seq", n(view.record.seq))
                .condition_expression("attribute_not_exists(seq) OR seq < :seq")
                .expression_attribute_values(":seq", n(view.record.seq));
            writes.spawn(async move {
                match put.send().await {
                    Ok(_) => Ok(()),
                    Err(e) => match conditional(e, |se| se.is_conditional_check_failed_exception())
                    {
                        // A view at least as new is there already.
                        StoreError::Conflict => Ok(()),
                        other => Err(other),
                    },
                }
            });
        }
        let mut first_error = Ok(());
        while let Some(done) = writes.join_next().await {
            let done = done.unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string())));
            first_error = first_error.and(done);
        }
        first_error
    }
}
