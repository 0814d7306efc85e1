//! [`Tally`]: the metrics the engine and the worker report, counted for
//! the status page on their way to the log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use failover_core::metrics::{Metric, Metrics};
use serde_json::{json, Value};

/// The last transitions shown.
const TRANSITIONS: usize = 20;

/// Counts since the last [`Tally::take`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    /// Requests the backend answered in time.
    pub sync: u64,
    /// Requests answered 202.
    pub accepted: u64,
    /// Tickets the worker finished (succeeded or failed for good).
    pub drained: u64,
}

pub struct Tally {
    inner: Arc<dyn Metrics>,
    sync: AtomicU64,
    accepted: AtomicU64,
    drained: AtomicU64,
    transitions: Mutex<VecDeque<Value>>,
}

impl Tally {
    pub fn new(inner: Arc<dyn Metrics>) -> Self {
        Self {
            inner,
            sync: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            transitions: Mutex::new(VecDeque::new()),
        }
    }

    /// The counts since the last call, resetting them.
    pub fn take(&self) -> Counts {
        Counts {
            sync: self.sync.swap(0, Ordering::Relaxed),
            accepted: self.accepted.swap(0, Ordering::Relaxed),
            drained: self.drained.swap(0, Ordering::Relaxed),
        }
    }

    /// The last transitions, newest first.
    pub fn transitions(&self) -> Vec<Value> {
        let t = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().rev().cloned().collect()
    }
}

impl Metrics for Tally {
    fn record(&self, metric: Metric) {
        match &metric {
            Metric::SyncAnswered { .. } => {
                self.sync.fetch_add(1, Ordering::Relaxed);
            }
            Metric::Failover { .. } => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Metric::WorkerOutcome { outcome, .. }
                if matches!(
                    *outcome,
                    "succeeded" | "rejected" | "exhausted" | "expired" | "unroutable" | "cancelled"
                ) =>
            {
                self.drained.fetch_add(1, Ordering::Relaxed);
            }
            Metric::BreakerTransition { to, group } => {
                let now = failover_core::Clock::now_ms(&failover_core::ports::SystemClock);
                let mut t = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == TRANSITIONS {
                    t.pop_front();
                }
                t.push_back(json!({ "at": now, "group": group, "to": to }));
            }
            _ => {}
        }
        self.inner.record(metric);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_page_shows_and_passes_everything_on() {
        let t = Tally::new(Arc::new(failover_core::metrics::LogMetrics));
        t.record(Metric::SyncAnswered {
            latency_ms: 3.0,
            route: "r".into(),
        });
        for outcome in ["succeeded", "retried", "exhausted", "deferred"] {
            t.record(Metric::WorkerOutcome {
                outcome,
                lane: "normal",
            });
        }
        t.record(Metric::BreakerTransition {
            to: "open",
            group: "g".into(),
        });
        let c = t.take();
        assert_eq!((c.sync, c.accepted, c.drained), (1, 0, 2));
        assert_eq!(t.take(), Counts::default(), "taken means reset");
        assert_eq!(t.transitions()[0]["to"], "open");
    }
}
