//! The fleet's circuit breakers in the ticket table: one item per breaker
//! group, `H#breaker` (without a routes file) or `H#breaker#<group>`.
//!
//! | attribute | holds |
//! |---|---|
//! | `doc`, `version` | the [`BreakerState`] as JSON, and its compare-and-set version |
//! | `ws<i>`, `wc<i>`, `we<i>`, `wl<i>`, `wb<i>` | window slot `i`: its second, calls, errors, slow calls, busy ms |
//!
//! Slots are counters that every instance `ADD`s to (no read-modify-write,
//! no lost updates); a slot still holding an older second is reset by a
//! conditional `SET` first. The state is replaced only if `version` is the
//! one the writer read, so one instance wins each transition. Every write
//! returns the whole item, so sending counts and reading the breaker is one
//! call. A slot is ~40 bytes, so with the default 30 s window the item is
//! ~1.5 KB: a read is one read unit, a write two (writes cost the item's
//! size; the template caps the window at 120 s, ~5 KB). Instances write once
//! per `HEALTH_CACHE_MS` at most, which keeps the single item below
//! DynamoDB's limit of 1,000 write units per second per item for fleets of
//! hundreds of instances.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use failover_core::breaker::rules::{BreakerState, Bucket};
use failover_core::breaker::store::HealthRecord;
use failover_core::breaker::HealthStore;
use failover_core::ports::StoreError;

use super::dynamodb::{conditional, encode, n, s, DynamoStore, Item};
use super::env::TABLE_KEY;

const HEALTH_KEY: &str = "H#breaker";

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn record_of(item: Option<Item>, window_s: i64) -> Result<HealthRecord, StoreError> {
    let Some(item) = item else {
        return Ok((None, Vec::new()));
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
            })
        })
        .collect();
    Ok((state, slots))
}

/// One breaker group's item.
#[derive(Clone)]
pub struct GroupHealth {
    store: DynamoStore,
    key: String,
}

impl DynamoStore {
    /// The health store of breaker group `group` (`""`: the gateway without
    /// a routes file, whose item keeps its old key).
    pub fn health(&self, group: &str) -> GroupHealth {
        let key = match group {
            "" => HEALTH_KEY.to_string(),
            g => format!("{HEALTH_KEY}#{g}"),
        };
        GroupHealth {
            store: self.clone(),
            key,
        }
    }
}

impl GroupHealth {
    /// Adds one second's counts to its slot; the item as it is afterwards,
    /// or `None` if the slot has moved on to a later second.
    async fn add_count(&self, c: &Bucket, window_s: i64) -> Result<Option<Item>, StoreError> {
        let i = c.second.rem_euclid(window_s);
        let steps = [
            ("#s = :sec", "ADD #c :c, #e :e, #l :l, #b :b"),
            (
                "attribute_not_exists(#s) OR #s < :sec",
                "SET #s = :sec, #c = :c, #e = :e, #l = :l, #b = :b",
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
                .expression_attribute_values(":sec", n(c.second))
                .expression_attribute_values(":c", n(c.calls))
                .expression_attribute_values(":e", n(c.errors))
                .expression_attribute_values(":l", n(c.slow))
                .expression_attribute_values(":b", n(c.busy_ms))
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
impl HealthStore for DynamoStore {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        self.health("").exchange(counts, window_s).await
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        self.health("").replace(next).await
    }
}

#[async_trait]
impl HealthStore for GroupHealth {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        let window_s = window_s.max(1);
        let mut item = None;
        for c in counts.iter().filter(|c| c.calls > 0) {
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
            .update_expression("SET doc = :doc, version = :v")
            .expression_attribute_values(":doc", s(encode(next)?))
            .expression_attribute_values(":v", n(next.version));
        if next.version > 1 {
            update = update.expression_attribute_values(":prev", n(next.version - 1));
        }
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(e, |se| se.is_conditional_check_failed_exception()))
    }
}
