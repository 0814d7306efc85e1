//! Drills in the table: the set as one JSON document, in [`DRILL_COPIES`]
//! items `D#drills#<k>`.
//!
//! Every API instance reads the set once per health-cache period, so, as
//! for the breaker's views, the reads are spread over copies: each read
//! takes one at random, eventually consistent (half a read unit). The tool
//! (the only writer) changes copy 0 with a compare-and-set on its
//! `version`, then writes the result to the other copies, each replaced
//! only by a later version; a tool that dies in between leaves some
//! copies behind until the next drill command rewrites them all.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use failover_core::drill::{with_started, with_stopped, Drill, DrillStore, Scope};
use failover_core::ports::StoreError;

use super::dynamodb::{conditional, n, s, DynamoStore, Item};
use super::env::TABLE_KEY;
use super::unavailable;

/// Copies of the set: 8 x 6,000 eventually consistent reads a second.
pub const DRILL_COPIES: usize = 8;

fn key(copy: usize) -> String {
    format!("D#drills#{copy}")
}

/// Compare-and-set attempts of one change.
const RACES: usize = 5;

fn decode(item: Option<&Item>) -> Result<(Vec<Drill>, u64), StoreError> {
    let Some(item) = item else {
        return Ok((Vec::new(), 0));
    };
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let drills = match item.get("drills") {
        Some(AttributeValue::S(doc)) => serde_json::from_str(doc)
            .map_err(|e| StoreError::Unavailable(format!("corrupt drills: {e}")))?,
        _ => Vec::new(),
    };
    Ok((drills, version))
}

impl DynamoStore {
    async fn read_drills(
        &self,
        copy: usize,
        consistent: bool,
    ) -> Result<(Vec<Drill>, u64), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE_KEY, s(key(copy)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable)?;
        decode(out.item.as_ref())
    }

    async fn write_drills(
        &self,
        copy: usize,
        drills: &[Drill],
        version: u64,
    ) -> Result<(), StoreError> {
        let doc =
            serde_json::to_string(drills).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(TABLE_KEY, s(key(copy)))
            .item("drills", s(doc))
            .item("version", n(version))
            .condition_expression("attribute_not_exists(version) OR version < :v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(e, |se| se.is_conditional_check_failed_exception()))
    }

    /// Applies `change` to the set with a compare-and-set on copy 0, then
    /// copies the result everywhere.
    async fn change_drills<T>(
        &self,
        change: impl Fn(Vec<Drill>) -> (Vec<Drill>, T),
    ) -> Result<T, StoreError> {
        for _ in 0..RACES {
            let (set, version) = self.read_drills(0, true).await?;
            let (next, out) = change(set);
            match self.write_drills(0, &next, version + 1).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
            for copy in 1..DRILL_COPIES {
                match self.write_drills(copy, &next, version + 1).await {
                    // A later set is there already.
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(out);
        }
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl DrillStore for DynamoStore {
    async fn drills(&self) -> Result<Vec<Drill>, StoreError> {
        let copy = (uuid::Uuid::new_v4().as_u128() % DRILL_COPIES as u128) as usize;
        Ok(self.read_drills(copy, false).await?.0)
    }

    async fn start(&self, drill: &Drill) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        self.change_drills(|set| (with_started(set, drill, now), ()))
            .await
    }

    async fn stop(&self, scope: Option<&Scope>) -> Result<usize, StoreError> {
        self.change_drills(|set| with_stopped(set, scope)).await
    }
}
