//! The gate's conversation with its store: sending counts and reading the
//! breaker back (`refresh`; how in a large fleet: `sample.rs`), conditional
//! writes of transitions, and what happens when the store does not answer
//! (the instance breaker decides).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::sample::Source;
use super::{Breaker, Cache};
use crate::breaker::rules::{BreakerState, Mode};
use crate::breaker::store::HealthRecord;
use crate::metrics::Metric;
use crate::ports::StoreError;

/// A store call slower than this counts as the store being unreachable.
const STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// About how many instances per second may try to claim a due probe: each
/// refresh draws whether its instance may, so that thousands of instances
/// do not all race to write the one half-open slot.
const CLAIMERS_PER_S: f64 = 10.0;

impl Breaker {
    /// Records why the store failed (`None`: it answered), handing the
    /// decisions to the fallback or back.
    pub(super) fn set_unreachable(&self, c: &mut Cache, why: Option<String>) {
        match (&c.unreachable, &why) {
            (None, Some(e)) => tracing::warn!(scope = self.scope, error = %e,
                "health store unreachable: this instance's breaker decides"),
            (Some(e), None) => tracing::info!(scope = self.scope, was = %e,
                "health store reachable again"),
            _ => {}
        }
        if let Some(f) = &self.fallback {
            f.deciding.store(why.is_some(), Ordering::Relaxed);
        }
        c.unreachable = why;
    }

    /// Sends this instance's counts, reads the state and window back, and
    /// opens the breaker if the (fleet's) window says so.
    ///
    /// A fleet larger than the store's report budget samples: each refresh
    /// reports with probability `1 / weight`, its counts scaled by
    /// `weight`, and some of those publish what they read back as the view;
    /// the others drop their counts (the sample stands for them) and read
    /// the view. Only what was read from the record itself may open the
    /// breaker, so thousands of readers of one tripped view do not all race
    /// to write.
    pub(super) async fn refresh(&self, now: i64) {
        let Ok(_one) = self.refreshing.try_lock() else {
            return; // another call is refreshing; the copy will do
        };
        let (pending, weight, known) = {
            let mut c = self.cache();
            let pending = std::mem::take(&mut c.pending);
            (
                pending,
                c.weight.saturating_mul(c.backoff),
                c.fetched_ms.is_some(),
            )
        };
        let (record, source) = match self.fetch(now, &pending, weight, known).await {
            Ok(read) => read,
            Err(e) => {
                let mut c = self.cache();
                c.fetched_ms = Some(now);
                return self.set_unreachable(&mut c, Some(e.to_string()));
            }
        };
        let direct = !matches!(source, Source::View { .. });
        let (state, totals, publish) = {
            let mut c = self.cache();
            c.fetched_ms = Some(now);
            self.set_unreachable(&mut c, None);
            if let Some(state) = &record.state {
                // A view may be older than a transition this instance wrote.
                if direct || state.version >= c.state.version {
                    c.state = state.clone();
                }
            }
            c.window = record.window.clone();
            // Counted as of when the copy was taken: a second that was
            // under way then is not complete now.
            let taken_ms = match source {
                Source::View { taken_ms } => taken_ms,
                _ => now,
            };
            let refreshes = f64::from(self.rules.refreshes(&c.window, taken_ms));
            // Down at most by half a refresh: reports lost to throttling
            // must not make the fleet look small and report more.
            let weight = (refreshes / self.budget.reports_per_s).ceil().max(1.0) as u32;
            c.weight = weight.max(c.weight / 2);
            c.may_claim = refreshes * self.draw() < CLAIMERS_PER_S;
            let totals = self
                .rules
                .totals(&c.state, c.window.iter().chain(&c.pending), now);
            // Of the refreshes reading the record itself (about one in
            // `weight`), enough publish to keep the views fresh; one that
            // found the view stale always does.
            let reads = refreshes / f64::from(c.weight);
            let publish = c.weight > 1
                && match source {
                    Source::Report => self.draw() * reads < self.budget.views_per_s,
                    Source::Record => true,
                    Source::View { .. } => false,
                };
            (c.state.clone(), totals, publish)
        };
        if publish {
            self.publish(record, now).await;
        }
        self.shadow(&state, now).await;
        if direct && state.mode == Mode::Closed && self.rules.tripped(&totals) {
            let next = self.rules.open(&state, now, self.rules.open_ms);
            if let Err(StoreError::Conflict) = self.write(&state, next).await {
                self.reload().await;
            }
        }
    }

    /// Keeps the instance breaker (the fallback) from holding a verdict the
    /// fleet has moved past: one left open by this instance's calls, whose
    /// open period has run out, takes the fleet's `closed` rather than
    /// probing on its own the moment the store goes (in a fleet of
    /// thousands, thousands of probes at once); one that is closed while
    /// the fleet is open takes the fleet's open period. Its window, the
    /// instance's own calls, stays, but from when the fleet last closed:
    /// calls before that were judged by the fleet's recovery.
    async fn shadow(&self, fleet: &BreakerState, now: i64) {
        let Some(f) = self.fallback.as_deref() else {
            return;
        };
        let own = f.cache().state.clone();
        let mode = match (fleet.mode, own.mode) {
            (Mode::Closed, Mode::Open { until_ms }) if until_ms <= now => Mode::Closed,
            (Mode::Closed, Mode::HalfOpen { .. }) => Mode::Closed,
            (Mode::Open { until_ms }, Mode::Closed) => Mode::Open { until_ms },
            _ => return,
        };
        let next = BreakerState {
            mode,
            open_period_ms: fleet.open_period_ms,
            window_from_s: own.window_from_s.max(fleet.window_from_s),
            version: own.version + 1,
            ..own.clone()
        };
        // In process: it fails only if a call of this instance raced it.
        let _ = f.write(&own, next).await;
    }

    /// Reads the state after losing a race, without sending counts.
    pub(super) async fn reload(&self) {
        if let Ok(HealthRecord {
            state: Some(state),
            window,
            ..
        }) = self
            .call(self.store.exchange(&[], self.rules.window_s))
            .await
        {
            let mut c = self.cache();
            if state.version >= c.state.version {
                c.state = state;
                c.window = window;
            }
        }
    }

    pub(super) async fn call<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(STORE_TIMEOUT, f)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("health store timed out".into())))
    }

    /// Writes `next` (made from `from`) and keeps it; reports a transition.
    pub(super) async fn write(
        &self,
        from: &BreakerState,
        next: BreakerState,
    ) -> Result<(), StoreError> {
        let written = self.call(self.store.replace(&next)).await;
        match &written {
            Ok(()) => {
                if next.transitions > from.transitions {
                    self.report(&next);
                }
                let sampled = {
                    let mut c = self.cache();
                    if next.version > c.state.version {
                        c.state = next;
                    }
                    c.weight > 1
                };
                if sampled {
                    self.republish().await;
                }
            }
            Err(StoreError::Unavailable(e)) => {
                self.set_unreachable(&mut self.cache(), Some(e.clone()));
            }
            Err(StoreError::Conflict) => {}
        }
        written
    }

    fn report(&self, s: &BreakerState) {
        let (to, scope) = (s.name(), self.scope);
        if !self.deciding.load(Ordering::Relaxed) {
            return tracing::debug!(scope, to, group = self.group, "shadow breaker transition");
        }
        if let Some(m) = &self.metrics {
            m.record(Metric::BreakerTransition {
                to,
                group: self.group.clone(),
            });
        }
        match s.mode {
            Mode::Open { .. } => {
                tracing::warn!(scope, to, open_ms = s.open_period_ms, "breaker opened")
            }
            _ => tracing::info!(scope, to, "breaker transition"),
        }
    }
}
