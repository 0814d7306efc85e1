//! The breaker's rules as pure functions over a [`BreakerState`].
//!
//! Nothing here reads a clock or a store: the gate passes `now` (epoch ms)
//! and the window buckets in, and gets back the admission and, when the state
//! must change, the next state to write. Keeping the rules pure is what lets
//! one process (a mutex) and a fleet (conditional writes) share them exactly.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Admission;
use crate::config::{ForceMode, Policy};

/// The breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Mode {
    Closed,
    Open {
        until_ms: i64,
    },
    HalfOpen {
        /// When the probe in flight started; `None` between probes.
        probe_since_ms: Option<i64>,
        /// Healthy probes in a row so far.
        healthy: u32,
    },
}

/// What the health store keeps besides the window: the whole breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    #[serde(flatten)]
    pub mode: Mode,
    pub open_period_ms: u64,
    /// Window buckets of earlier seconds are ignored: closing the breaker
    /// starts a fresh window without deleting anything.
    pub window_from_s: i64,
    /// When it last closed after being open (the worker's drain ramp).
    pub closed_at_ms: Option<i64>,
    pub transitions: u64,
    /// Bumped by every write: the compare-and-set token (0 = never written).
    pub version: u64,
}

impl BreakerState {
    pub fn initial(open_period: Duration) -> Self {
        Self {
            mode: Mode::Closed,
            open_period_ms: open_period.as_millis() as u64,
            window_from_s: i64::MIN,
            closed_at_ms: None,
            transitions: 0,
            version: 0,
        }
    }

    /// The same state one write later, having made a transition.
    fn transition(&self, mode: Mode) -> Self {
        Self {
            mode,
            transitions: self.transitions + 1,
            version: self.version + 1,
            ..self.clone()
        }
    }

    pub fn name(&self) -> &'static str {
        match self.mode {
            Mode::Closed => "closed",
            Mode::Open { .. } => "open",
            Mode::HalfOpen { .. } => "half_open",
        }
    }
}

/// Calls that ended in one second of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub second: i64,
    pub calls: u32,
    pub errors: u32,
    pub slow: u32,
    /// Their summed duration: by Little's law, a second's busy time over
    /// 1,000 ms is how many calls were in flight on average.
    pub busy_ms: u64,
    /// Refreshes reported in this second, each weighted by its sampling
    /// weight: how many refreshes per second the fleet makes (its size).
    #[serde(default)]
    pub refreshes: u32,
}

impl Bucket {
    pub fn add(&mut self, other: &Bucket) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.slow += other.slow;
        self.busy_ms += other.busy_ms;
        self.refreshes += other.refreshes;
    }

    /// These counts as a sample standing for `weight` times as many.
    pub fn scaled(&self, weight: u32) -> Self {
        Self {
            second: self.second,
            calls: self.calls.saturating_mul(weight),
            errors: self.errors.saturating_mul(weight),
            slow: self.slow.saturating_mul(weight),
            busy_ms: self.busy_ms.saturating_mul(u64::from(weight)),
            refreshes: self.refreshes.saturating_mul(weight),
        }
    }
}

/// Seconds the load estimate averages over. They end a second before the
/// current one, so that every instance has reported them (each sends its
/// counts once per `HEALTH_CACHE_MS`, 1 s by default).
const LOAD_SECONDS: i64 = 2;

/// The policy's breaker settings in the units the rules use.
#[derive(Debug, Clone)]
pub struct Rules {
    pub(crate) window_s: i64,
    min_calls: u32,
    error_rate: f64,
    slow_rate: f64,
    slow_call: Duration,
    pub(crate) open_ms: u64,
    open_max_ms: u64,
    close_after: u32,
    never_open: bool,
    max_inflight: f64,
    /// A probe that never reports back (its task was dropped, its Lambda
    /// instance died) stops holding the half-open slot after this long.
    probe_timeout_ms: i64,
}

impl Rules {
    pub fn new(p: &Policy) -> Self {
        Self {
            window_s: p.breaker_window.as_secs().max(1) as i64,
            min_calls: p.breaker_min_calls,
            error_rate: p.error_rate_threshold,
            slow_rate: p.slow_rate_threshold,
            slow_call: p.slow_call,
            open_ms: p.breaker_open.as_millis() as u64,
            open_max_ms: p.breaker_open_max.max(p.breaker_open).as_millis() as u64,
            close_after: p.breaker_close_after.max(1),
            never_open: p.force_mode == ForceMode::Sync,
            max_inflight: p.sync_max_inflight as f64,
            probe_timeout_ms: (p.sync_deadline.max(p.worker_deadline) * 2).as_millis() as i64,
        }
    }

    /// The window's totals at `now`, over buckets from any source.
    pub fn totals<'a>(
        &self,
        state: &BreakerState,
        buckets: impl IntoIterator<Item = &'a Bucket>,
        now_ms: i64,
    ) -> Bucket {
        let current = now_ms.div_euclid(1000);
        let from = (current - self.window_s + 1).max(state.window_from_s);
        let mut total = Bucket::default();
        buckets
            .into_iter()
            .filter(|b| (from..=current).contains(&b.second))
            .for_each(|b| total.add(b));
        total
    }

    /// Backend calls in flight on average over the last complete seconds,
    /// from buckets of the whole fleet.
    pub fn load<'a>(&self, buckets: impl IntoIterator<Item = &'a Bucket>, now_ms: i64) -> f64 {
        let last = now_ms.div_euclid(1000) - 2;
        let busy: u64 = buckets
            .into_iter()
            .filter(|b| (last - LOAD_SECONDS + 1..=last).contains(&b.second))
            .map(|b| b.busy_ms)
            .sum();
        busy as f64 / (LOAD_SECONDS * 1000) as f64
    }

    /// The fleet's refreshes per second: the most any of the last three
    /// seconds holds. The oldest is complete (a refresh is counted in the
    /// second of the latest call it reports, at most one cache period old);
    /// the newer ones only ever hold less, unless the fleet is growing.
    pub fn refreshes<'a>(&self, buckets: impl IntoIterator<Item = &'a Bucket>, now_ms: i64) -> u32 {
        let current = now_ms.div_euclid(1000);
        let mut per_second = [0u32; 3];
        for b in buckets {
            if let Some(i) = usize::try_from(current - b.second).ok().filter(|i| *i < 3) {
                per_second[i] = per_second[i].saturating_add(b.refreshes);
            }
        }
        per_second.into_iter().max().unwrap_or(0)
    }

    /// The share of sync attempts to shed at this load so that the rest
    /// stay within `SYNC_MAX_INFLIGHT`: 0 below it, `1 - max/load` above.
    pub fn shed_share(&self, load: f64) -> f64 {
        match load > self.max_inflight {
            true => 1.0 - self.max_inflight / load,
            false => 0.0,
        }
    }

    /// Whether a closed breaker with these totals must open.
    pub fn tripped(&self, t: &Bucket) -> bool {
        let rate = |n: u32| f64::from(n) / f64::from(t.calls);
        !self.never_open
            && t.calls >= self.min_calls
            && (rate(t.errors) > self.error_rate || rate(t.slow) > self.slow_rate)
    }

    /// Whether a finished call counts as slow, and as failed.
    pub fn judge(&self, outcome: super::CallOutcome, latency: Duration) -> (bool, bool) {
        use super::CallOutcome::*;
        let slow = outcome == Timeout || latency > self.slow_call;
        (slow, outcome != Answered)
    }

    pub fn open(&self, s: &BreakerState, now_ms: i64, period_ms: u64) -> BreakerState {
        BreakerState {
            open_period_ms: period_ms,
            ..s.transition(Mode::Open {
                until_ms: now_ms + period_ms as i64,
            })
        }
    }

    /// The admission for a request at `now`, and the state to write first
    /// when admitting it changes the breaker (claiming the probe).
    pub fn admit(&self, s: &BreakerState, now_ms: i64) -> (Admission, Option<BreakerState>) {
        let wait = |ms: i64| Admission::Open {
            retry_after: Duration::from_millis(ms.max(1) as u64),
        };
        match s.mode {
            Mode::Closed => (Admission::Sync, None),
            Mode::Open { until_ms } if now_ms < until_ms => (wait(until_ms - now_ms), None),
            Mode::Open { .. } => {
                let next = s.transition(Mode::HalfOpen {
                    probe_since_ms: Some(now_ms),
                    healthy: 0,
                });
                (Admission::Probe, Some(next))
            }
            Mode::HalfOpen {
                probe_since_ms: Some(since),
                ..
            } if now_ms - since < self.probe_timeout_ms => (wait(1000), None),
            Mode::HalfOpen { healthy, .. } => {
                let next = BreakerState {
                    mode: Mode::HalfOpen {
                        probe_since_ms: Some(now_ms),
                        healthy,
                    },
                    version: s.version + 1,
                    ..s.clone()
                };
                (Admission::Probe, Some(next))
            }
        }
    }

    /// The state after the probe was given back without a call (its worker
    /// lost the race for the ticket): the slot is free again at once.
    pub fn release_probe(&self, s: &BreakerState) -> Option<BreakerState> {
        let Mode::HalfOpen {
            probe_since_ms: Some(_),
            healthy,
        } = s.mode
        else {
            return None;
        };
        Some(BreakerState {
            mode: Mode::HalfOpen {
                probe_since_ms: None,
                healthy,
            },
            version: s.version + 1,
            ..s.clone()
        })
    }

    /// The state an operator's reset writes: closed on a fresh window (from
    /// the next second: calls that ended before the reset do not count), the
    /// open period back to its base. An open breaker closed this way starts
    /// the worker's drain ramp, as a recovery does.
    pub fn reset(&self, s: &BreakerState, now_ms: i64) -> BreakerState {
        let closed_at_ms = match s.mode {
            Mode::Closed => s.closed_at_ms,
            _ => Some(now_ms),
        };
        BreakerState {
            open_period_ms: self.open_ms,
            window_from_s: now_ms.div_euclid(1000) + 1,
            closed_at_ms,
            ..s.transition(Mode::Closed)
        }
    }

    /// The state after a probe ended; `None` if the breaker is no longer
    /// half-open (the probe's answer came too late to matter).
    pub fn after_probe(
        &self,
        s: &BreakerState,
        now_ms: i64,
        healthy: bool,
    ) -> Option<BreakerState> {
        let Mode::HalfOpen { healthy: n, .. } = s.mode else {
            return None;
        };
        Some(if !healthy {
            self.open(s, now_ms, (s.open_period_ms * 2).min(self.open_max_ms))
        } else if n + 1 >= self.close_after {
            BreakerState {
                open_period_ms: self.open_ms,
                window_from_s: now_ms.div_euclid(1000),
                closed_at_ms: Some(now_ms),
                ..s.transition(Mode::Closed)
            }
        } else {
            BreakerState {
                mode: Mode::HalfOpen {
                    probe_since_ms: None,
                    healthy: n + 1,
                },
                version: s.version + 1,
                ..s.clone()
            }
        })
    }
}
