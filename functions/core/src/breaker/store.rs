//! Where the breaker lives: the [`HealthStore`] port, and the in-process
//! store local mode uses.
//!
//! A store keeps one [`BreakerState`] and a ring of per-second window
//! [`Bucket`]s. Counts are merged (added), never replaced, so that many
//! writers can report at once; the state is replaced only by a conditional
//! write on its version, so that of N instances racing to open the breaker or
//! to become the probe, exactly one wins. The DynamoDB adapter implements the
//! same port for a fleet, and both pass the conformance suite in `tests/`.
//!
//! A fleet too large for one record's write capacity samples its reports
//! (see the gate), and the instances that do not report read a [`View`]: a
//! copy of the record that reporters publish, kept apart from the record so
//! that thousands of readers do not all read one item.

use std::sync::Mutex;

use async_trait::async_trait;

use super::rules::{BreakerState, Bucket};
use crate::ports::StoreError;

/// What a store holds: the state (absent until first written) and the
/// window's buckets as stored (the reader filters them by time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthRecord {
    pub state: Option<BreakerState>,
    pub window: Vec<Bucket>,
    /// Bumped by every write (counts or state): orders the views.
    pub seq: u64,
}

/// A copy of the record taken at `taken_ms`, for the instances that do not
/// report this time.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub record: HealthRecord,
    pub taken_ms: i64,
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Adds `counts` to the window (slot `second mod window_s`; a slot
    /// holding an older second is reset first, counts for a second older
    /// than the slot's are dropped), then reads the whole record.
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError>;

    /// Writes `next` if the stored version is `next.version - 1` (absent
    /// counts as 0); otherwise [`StoreError::Conflict`].
    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError>;

    /// The view this instance reads (a fleet store keeps several copies
    /// and gives each instance one), if any was published. It may lag.
    async fn read_view(&self) -> Result<Option<View>, StoreError>;

    /// Publishes `view` to every copy, except where a copy holds one of a
    /// later `seq`.
    async fn publish_view(&self, view: &View) -> Result<(), StoreError>;

    /// How much of a fleet's traffic the record takes comfortably; a
    /// larger fleet samples.
    fn budget(&self, _window_s: i64) -> Budget {
        Budget::UNLIMITED
    }
}

/// What a store's shared record takes, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Exchanges carrying counts, well inside the record's write limit.
    pub reports_per_s: f64,
    /// Views published (each to every copy), enough to keep them fresh.
    pub views_per_s: f64,
}

impl Budget {
    pub const UNLIMITED: Self = Self {
        reports_per_s: f64::INFINITY,
        views_per_s: f64::INFINITY,
    };
}

/// Merges `count` into a ring of slots by the rule [`HealthStore::exchange`]
/// states.
fn merge_into_ring(ring: &mut Vec<Bucket>, count: &Bucket, window_s: i64) {
    let len = window_s.max(1) as usize;
    if ring.len() != len {
        ring.resize(len, Bucket::default());
    }
    let slot = &mut ring[count.second.rem_euclid(len as i64) as usize];
    if slot.second < count.second || *slot == Bucket::default() {
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
    inner: Mutex<(HealthRecord, Option<View>)>,
}

impl InProcessHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HealthRecord, Option<View>)> {
        // Counters and a state that is replaced whole: nothing a panicking
        // holder could leave half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl HealthStore for InProcessHealth {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        let record = &mut self.lock().0;
        for c in counts {
            merge_into_ring(&mut record.window, c, window_s);
        }
        record.seq += u64::from(!counts.is_empty());
        Ok(record.clone())
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        let record = &mut self.lock().0;
        let stored = record.state.as_ref().map_or(0, |s| s.version);
        if stored + 1 != next.version {
            return Err(StoreError::Conflict);
        }
        record.state = Some(next.clone());
        record.seq += 1;
        Ok(())
    }

    async fn read_view(&self) -> Result<Option<View>, StoreError> {
        Ok(self.lock().1.clone())
    }

    async fn publish_view(&self, view: &View) -> Result<(), StoreError> {
        let held = &mut self.lock().1;
        if held.as_ref().is_none_or(|h| h.record.seq < view.record.seq) {
            *held = Some(view.clone());
        }
        Ok(())
    }
}
