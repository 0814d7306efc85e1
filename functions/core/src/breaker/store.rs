//! Where the breaker lives: the [`HealthStore`] port, and the in-process
//! store local mode uses.
//!
//! A store keeps one [`BreakerState`] and a ring of per-second window
//! [`Bucket`]s. Counts are merged (added), never replaced, so that many
//! writers can report at once; the state is replaced only by a conditional
//! write on its version, so that of N instances racing to open the breaker or
//! to become the probe, exactly one wins. The DynamoDB adapter implements the
//! same port for a fleet, and both pass the conformance suite in `tests/`.

use std::sync::Mutex;

use async_trait::async_trait;

use super::rules::{BreakerState, Bucket};
use crate::ports::StoreError;

/// What a store holds: the state (absent until first written) and the
/// window's buckets as stored (the reader filters them by time).
pub type HealthRecord = (Option<BreakerState>, Vec<Bucket>);

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Adds `counts` to the window (slot `second mod window_s`; a slot
    /// holding an older second is reset first, counts for a second older
    /// than the slot's are dropped), then reads the whole record.
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError>;

    /// Writes `next` if the stored version is `next.version - 1` (absent
    /// counts as 0); otherwise [`StoreError::Conflict`].
    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError>;
}

/// Merges `count` into a ring of slots by the rule [`HealthStore::exchange`]
/// states.
fn merge_into_ring(ring: &mut Vec<Bucket>, count: &Bucket, window_s: i64) {
    let len = window_s.max(1) as usize;
    if ring.len() != len {
        ring.resize(len, Bucket::default());
    }
    let slot = &mut ring[count.second.rem_euclid(len as i64) as usize];
    if slot.second < count.second || slot.calls == 0 {
        *slot = Bucket {
            second: count.second,
            ..Bucket::default()
        };
    }
    if slot.second == count.second {
        slot.add(count);
    }
}

/// The breaker of one process: local mode, tests, and the fallback of a
/// fleet-wide gate whose store is unreachable.
#[derive(Debug, Default)]
pub struct InProcessHealth {
    inner: Mutex<(Option<BreakerState>, Vec<Bucket>)>,
}

impl InProcessHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<BreakerState>, Vec<Bucket>)> {
        // Counters and a state that is replaced whole: nothing a panicking
        // holder could leave half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl HealthStore for InProcessHealth {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        let mut inner = self.lock();
        for c in counts {
            merge_into_ring(&mut inner.1, c, window_s);
        }
        Ok(inner.clone())
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let stored = inner.0.as_ref().map_or(0, |s| s.version);
        if stored + 1 != next.version {
            return Err(StoreError::Conflict);
        }
        inner.0 = Some(next.clone());
        Ok(())
    }
}
