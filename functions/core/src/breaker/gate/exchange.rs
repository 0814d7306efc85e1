//! The gate's conversation with its store: sending counts and reading the
//! breaker back (`refresh`), conditional writes of transitions, and what
//! happens when the store does not answer (the instance breaker decides).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Breaker, Cache};
use crate::breaker::rules::{BreakerState, Mode};
use crate::metrics::Metric;
use crate::ports::StoreError;

/// A store call slower than this counts as the store being unreachable.
const STORE_TIMEOUT: Duration = Duration::from_millis(250);

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
    pub(super) async fn refresh(&self, now: i64) {
        let Ok(_one) = self.refreshing.try_lock() else {
            return; // another call is refreshing; the copy will do
        };
        let pending = std::mem::take(&mut self.cache().pending);
        let read = self
            .call(self.store.exchange(&pending, self.rules.window_s))
            .await;
        let (state, totals) = {
            let mut c = self.cache();
            c.fetched_ms = Some(now);
            match read {
                Ok((state, window)) => {
                    self.set_unreachable(&mut c, None);
                    if let Some(state) = state {
                        c.state = state;
                    }
                    c.window = window;
                }
                Err(e) => {
                    self.set_unreachable(&mut c, Some(e.to_string()));
                    return;
                }
            }
            let totals = self
                .rules
                .totals(&c.state, c.window.iter().chain(&c.pending), now);
            (c.state.clone(), totals)
        };
        if state.mode == Mode::Closed && self.rules.tripped(&totals) {
            let next = self.rules.open(&state, now, self.rules.open_ms);
            if let Err(StoreError::Conflict) = self.write(&state, next).await {
                self.reload().await;
            }
        }
    }

    /// Reads the state after losing a race, without sending counts.
    pub(super) async fn reload(&self) {
        if let Ok((Some(state), window)) = self
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

    async fn call<T>(
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
                let mut c = self.cache();
                if next.version > c.state.version {
                    c.state = next;
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
