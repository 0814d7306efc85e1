//! The fleet's circuit breakers in the ticket table: one record item per
//! breaker group, `H#breaker` (without a routes file) or `H#breaker#<group>`,
//! and [`VIEW_COPIES`] view items per group (`health_view.rs`).
//!
//! | attribute | holds |
//! |---|---|
//! | `doc`, `version` | the [`BreakerState`] as JSON, and its compare-and-set version |
//! | `seq` | bumped by every write: orders the views taken of the record |
//! | `ws<i>`, `wc<i>`, `we<i>`, `wl<i>`, `wb<i>`, `wr<i>` | window slot `i`: its second, calls, errors, slow calls, busy ms, refreshes |
//!
//! Slots are counters that every reporter `ADD`s to (no read-modify-write,
//! no lost updates); a slot still holding an older second is reset by a
//! conditional `SET` first. The state is replaced only if `version` is the
//! one the writer read, so one instance wins each transition. Every write
//! returns the whole item, so sending counts and reading the breaker is one
//! call.
//!
//! A write costs the item's size in write units, and one item takes at most
//! 1,000 units per second (its partition's limit), so the record declares a
//! [`budget`]: the reports per second that fit in [`RECORD_WCU_BUDGET`] at
//! the window's worst-case item size, and the views per second that keep
//! every copy fresh. A larger fleet samples its reports to that rate (the
//! gate's job), and its other instances read the views.
//! The sizes are the adapter's claims; the conformance suite checks them
//! against the units DynamoDB Local reports consuming.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use failover_core::breaker::rules::{BreakerState, Bucket};
use failover_core::breaker::store::{Budget, HealthRecord, View};
use failover_core::breaker::HealthStore;
use failover_core::ports::StoreError;

use super::dynamodb::{conditional, encode, n, s, DynamoStore, Item};
use super::env::TABLE_KEY;
use super::health_view::VIEW_COPIES;

const HEALTH_KEY: &str = "H#breaker";

/// Write units per second the record may take from reports: 40% of the
/// item's 1,000, leaving the rest to probe claims, transitions, reads
/// of the record and the views that may share its partition.
pub const RECORD_WCU_BUDGET: f64 = 400.0;

/// The record's largest size: key (a group label of up to 280 bytes: a
/// host name and port), state and counters, plus six numbers per window
/// slot (names like `wb119`, values up to 20 digits).
pub fn record_bytes(window_s: i64) -> usize {
    const BASE: usize = 800;
    const SLOT: usize = 6 * 5 + 5 * 6 + 11;
    BASE + SLOT * window_s.max(1) as usize
}

/// The reports per second the record takes within [`RECORD_WCU_BUDGET`],
/// and views enough to refresh the copies four times a second.
pub fn budget(window_s: i64) -> Budget {
    Budget {
        reports_per_s: RECORD_WCU_BUDGET / record_bytes(window_s).div_ceil(1024) as f64,
        views_per_s: 4.0,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn record_of(item: Option<Item>, window_s: i64) -> Result<HealthRecord, StoreError> {
    let Some(item) = item else {
        return Ok(HealthRecord::default());
    };
    let state = match item.get("doc").and_then(|v| v.as_s().ok()) {
        Some(doc) => Some(
            serde_json::from_str::<BreakerState>(doc)
                .map_err(|e| StoreError::Unavailable(format!("corrupt breaker item: {e}")))?,
        ),
        None => None,
    };
    let slots = (0..window_s)
        .filter_map(|i| {
            let count = |p: &str| number(&item, &format!("{p}{i}")).unwrap_or(0) as u32;
            Some(Bucket {
                second: number(&item, &format!("ws{i}"))?,
                calls: count("wc"),
                errors: count("we"),
                slow: count("wl"),
                busy_ms: number(&item, &format!("wb{i}")).unwrap_or(0) as u64,
                refreshes: count("wr"),
            })
        })
        .collect();
    Ok(HealthRecord {
        state,
        window: slots,
        seq: number(&item, "seq").unwrap_or(0) as u64,
    })
}

/// One breaker group's record, and the view copy this instance reads.
#[derive(Clone)]
pub struct GroupHealth {
    pub(super) store: DynamoStore,
    key: String,
    /// `#<group>`, or empty for the gateway without a routes file.
    pub(super) suffix: String,
    /// The copy of the view this instance reads.
    pub(super) copy: usize,
}

impl DynamoStore {
    /// The health store of breaker group `group` (`""`: the gateway without
    /// a routes file, whose item keeps its old key), reading one of the
    /// group's view copies picked at random (so readers spread over them).
    pub fn health(&self, group: &str) -> GroupHealth {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        self.health_reading(group, random as usize % VIEW_COPIES)
    }

    /// The same, reading view copy `copy`.
    pub fn health_reading(&self, group: &str, copy: usize) -> GroupHealth {
        let suffix = match group {
            "" => String::new(),
            g => format!("#{g}"),
        };
        GroupHealth {
            store: self.clone(),
            key: format!("{HEALTH_KEY}{suffix}"),
            suffix,
            copy,
        }
    }
}

impl GroupHealth {
    /// Adds one second's counts to its slot; the item as it is afterwards,
    /// or `None` if the slot has moved on to a later second.
    async fn add_count(&self, c: &Bucket, window_s: i64) -> Result<Option<Item>, StoreError> {
        let i = c.second.rem_euclid(window_s);
        let steps = [
            (
                "#s = :sec",
                "ADD #c :c, #e :e, #l :l, #b :b, #r :r, seq :one",
            ),
            (
                "attribute_not_exists(#s) OR #s < :sec",
                "SET #s = :sec, #c = :c, #e = :e, #l = :l, #b = :b, #r = :r ADD seq :one",
            ),
        ];
        // Add if the slot holds this second, else reset it; another instance
        // may reset it between the two, hence a second round.
        for (condition, update) in steps.iter().cycle().take(4) {
            let out = self
                .store
                .client
                .update_item()
                .table_name(&self.store.table)
                .key(TABLE_KEY, s(&self.key))
                .condition_expression(*condition)
                .update_expression(*update)
                .expression_attribute_names("#s", format!("ws{i}"))
                .expression_attribute_names("#c", format!("wc{i}"))
                .expression_attribute_names("#e", format!("we{i}"))
                .expression_attribute_names("#l", format!("wl{i}"))
                .expression_attribute_names("#b", format!("wb{i}"))
                .expression_attribute_names("#r", format!("wr{i}"))
                .expression_attribute_values(":sec", n(c.second))
                .expression_attribute_values(":c", n(c.calls))
                .expression_attribute_values(":e", n(c.errors))
                .expression_attribute_values(":l", n(c.slow))
                .expression_attribute_values(":b", n(c.busy_ms))
                .expression_attribute_values(":r", n(c.refreshes))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match out {
                Ok(out) => return Ok(out.attributes),
                Err(e) => match conditional(e, |se| se.is_conditional_check_failed_exception()) {
                    StoreError::Conflict => continue,
                    other => return Err(other),
                },
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl HealthStore for GroupHealth {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        let window_s = window_s.max(1);
        let mut item = None;
        for c in counts.iter().filter(|c| c.calls > 0 || c.refreshes > 0) {
            if let Some(after) = self.add_count(c, window_s).await? {
                item = Some(after);
            }
        }
        if item.is_none() {
            item = self.store.get_consistent(self.key.clone()).await?;
        }
        record_of(item, window_s)
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        let condition = match next.version {
            0 | 1 => "attribute_not_exists(version)",
            _ => "version = :prev",
        };
        let mut update = self
            .store
            .client
            .update_item()
            .table_name(&self.store.table)
            .key(TABLE_KEY, s(&self.key))
            .condition_expression(condition)
            .update_expression("SET doc = :doc, version = :v ADD seq :one")
            .expression_attribute_values(":doc", s(encode(next)?))
            .expression_attribute_values(":v", n(next.version))
            .expression_attribute_values(":one", n(1));
        if next.version > 1 {
            update = update.expression_attribute_values(":prev", n(next.version - 1));
        }
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(e, |se| se.is_conditional_check_failed_exception()))
    }

    async fn read_view(&self) -> Result<Option<View>, StoreError> {
        self.read_copy().await
    }

    async fn publish_view(&self, view: &View) -> Result<(), StoreError> {
        self.publish_copy(view).await
    }

    fn budget(&self, window_s: i64) -> Budget {
        budget(window_s)
    }
}
