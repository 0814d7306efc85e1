//! How a refresh gets the record when the fleet is larger than the store's
//! report budget: its own report (one refresh in `weight`, counts scaled
//! by `weight`), a view, or the record itself; the backoff that keeps a
//! throttled record from being asked more; and publishing the views.

use super::Breaker;
use crate::breaker::rules::Bucket;
use crate::breaker::store::{HealthRecord, View};
use crate::ports::StoreError;

/// A view older than this many cache periods is not trusted: one instance
/// in `weight` reads the record itself and republishes it.
const VIEW_MAX_AGE_TTLS: i64 = 3;

/// Past this many cache periods, every instance reads around the view.
const VIEW_OLDEST_TTLS: i64 = 30;

/// The most a failing instance multiplies its sampling weight by.
const MAX_BACKOFF: u32 = 1024;

/// Where a refresh got the record from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Source {
    /// Its own report's answer.
    Report,
    /// The record itself, read because the view was missing or stale.
    Record,
    /// A view, taken at `taken_ms`.
    View { taken_ms: i64 },
}

impl Breaker {
    /// The record, and where it came from. A report that fails (a
    /// throttled record) backs off and reads instead, as the instances
    /// that did not report do. A view too old to trust is read around: by
    /// a newcomer's report, or by reading the record, which one instance
    /// in `weight` does (and republishes) while the others make do with
    /// the old view for one more period, so that a fleet coming back from
    /// a store outage does not read one item all at once. A view older
    /// than [`VIEW_OLDEST_TTLS`] periods is not used at all.
    pub(super) async fn fetch(
        &self,
        now: i64,
        pending: &[Bucket],
        weight: u32,
        known: bool,
    ) -> Result<(HealthRecord, Source), StoreError> {
        let reports = known && self.draw() * f64::from(weight) < 1.0;
        if reports {
            let sent = self.send(now, pending, weight).await;
            self.back_off(sent.is_err());
            if let Ok(record) = sent {
                return Ok((record, Source::Report));
            }
        }
        let ttl = self.cache_ttl_ms.max(1);
        let view = self.call(self.store.read_view()).await?;
        let age = view.as_ref().map_or(i64::MAX, |v| now - v.taken_ms);
        let view = match view.map(|v| {
            (
                v.record,
                Source::View {
                    taken_ms: v.taken_ms,
                },
            )
        }) {
            Some(fresh) if age <= VIEW_MAX_AGE_TTLS * ttl => {
                if !reports {
                    // Others' reports get through: the record is not throttled.
                    self.back_off(false);
                }
                return Ok(fresh);
            }
            old => old,
        };
        if !known && !reports {
            // A newcomer has no weight yet: it reports.
            let sent = self.send(now, pending, 1).await;
            self.back_off(sent.is_err());
            return Ok((sent?, Source::Report));
        }
        let makes_do = age <= VIEW_OLDEST_TTLS * ttl && self.draw() * f64::from(weight) >= 1.0;
        if let Some(view) = view.filter(|_| makes_do) {
            return Ok(view);
        }
        let record = self.call(self.store.exchange(&[], self.rules.window_s));
        Ok((record.await?, Source::Record))
    }

    /// Doubles the backoff after a failed report, else halves it. A fresh
    /// view halves it too (the reports of others get through); a read of
    /// the record does neither (it is not a report).
    fn back_off(&self, failed: bool) {
        let mut c = self.cache();
        c.backoff = match failed {
            true => c.backoff.saturating_mul(2).min(MAX_BACKOFF),
            false => (c.backoff / 2).max(1),
        };
    }

    /// Sends the counts since the last refresh as one bucket (stamped with
    /// the latest second they cover: one UpdateItem, not one per second),
    /// counting this refresh, all scaled by `weight`.
    async fn send(
        &self,
        now: i64,
        pending: &[Bucket],
        weight: u32,
    ) -> Result<HealthRecord, StoreError> {
        let mut sum = Bucket {
            second: pending
                .iter()
                .map(|b| b.second)
                .max()
                .unwrap_or(now.div_euclid(1000)),
            refreshes: 1,
            ..Bucket::default()
        };
        pending.iter().for_each(|b| sum.add(b));
        let counts = [sum.scaled(weight)];
        self.call(self.store.exchange(&counts, self.rules.window_s))
            .await
    }

    /// Publishes the record as it is now: a sampled fleet hears of a state
    /// change at its next refresh, not when the views next happen to be
    /// refreshed.
    pub(super) async fn republish(&self) {
        let now = self.clock.now_ms();
        let read = self.call(self.store.exchange(&[], self.rules.window_s));
        match read.await {
            Ok(record) => self.publish(record, now).await,
            Err(e) => tracing::debug!(error = %e, "health record not read to publish"),
        }
    }

    pub(super) async fn publish(&self, record: HealthRecord, taken_ms: i64) {
        let view = View { record, taken_ms };
        if let Err(e) = self.call(self.store.publish_view(&view)).await {
            tracing::debug!(error = %e, "health view not published");
        }
    }
}
