//! The circuit breaker: measured backend health decides sync or async.
//!
//! Every sync outcome feeds a sliding window of one-second buckets
//! (`BREAKER_WINDOW_S`). Once it holds `BREAKER_MIN_CALLS` calls, an error
//! rate above `ERROR_RATE_THRESHOLD` or a slow-call rate above
//! `SLOW_RATE_THRESHOLD` opens the breaker: new requests go straight to the
//! queue (`circuit_open`) and wait for nothing. After the open period one probe
//! at a time is let through (half-open); `BREAKER_CLOSE_AFTER` healthy probes
//! in a row close it, a failed probe reopens it for twice as long (capped).
//! The doubling and the consecutive-probe rule are what stop a flapping
//! backend from flipping the mode back and forth.
//!
//! Time comes from `tokio::time::Instant`, so tests drive it with paused time.
//! This is the in-process implementation behind [`HealthGate`]; a fleet-wide
//! one (shared store) implements the same trait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::Policy;
use crate::metrics::{Metric, Metrics};

/// What the gate says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: try the backend.
    Sync,
    /// Half-open: this request is the one probe.
    Probe,
    /// Open: go async; the next probe is due in `retry_after`.
    Open { retry_after: Duration },
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// 2xx or 4xx: the backend is working.
    Answered,
    /// 5xx, 429, connection error.
    Error,
    /// The deadline passed (counts as slow and as an error).
    Timeout,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BreakerSnapshot {
    pub state: &'static str,
    pub calls: u32,
    pub error_rate: f64,
    pub slow_rate: f64,
    /// Milliseconds until the next probe may run, while open.
    pub next_probe_in_ms: Option<u64>,
    pub open_period_ms: u64,
    pub healthy_probes: u32,
    pub transitions: u64,
}

/// The port: local mode keeps it in process, AWS mode shares it fleet-wide.
#[async_trait]
pub trait HealthGate: Send + Sync {
    async fn admit(&self) -> Admission;
    async fn record(&self, admission: Admission, outcome: CallOutcome, latency: Duration);
    async fn snapshot(&self) -> BreakerSnapshot;
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    calls: u32,
    errors: u32,
    slow: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        probe_since: Option<Instant>,
        healthy: u32,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    buckets: Vec<Bucket>,
    open_period: Duration,
    transitions: u64,
}

pub struct Breaker {
    policy: BreakerPolicy,
    epoch: Instant,
    inner: Mutex<Inner>,
    metrics: Option<Arc<dyn Metrics>>,
}

#[derive(Debug, Clone)]
struct BreakerPolicy {
    window_s: u64,
    min_calls: u32,
    error_rate: f64,
    slow_rate: f64,
    slow_call: Duration,
    open: Duration,
    open_max: Duration,
    close_after: u32,
    never_open: bool,
    /// A probe that never reports back (its task was dropped) stops holding
    /// the half-open slot after this long.
    probe_timeout: Duration,
}

impl Breaker {
    pub fn new(p: &Policy) -> Self {
        let window_s = p.breaker_window.as_secs().max(1);
        Self {
            policy: BreakerPolicy {
                window_s,
                min_calls: p.breaker_min_calls,
                error_rate: p.error_rate_threshold,
                slow_rate: p.slow_rate_threshold,
                slow_call: p.slow_call,
                open: p.breaker_open,
                open_max: p.breaker_open_max.max(p.breaker_open),
                close_after: p.breaker_close_after.max(1),
                never_open: p.force_mode == crate::config::ForceMode::Sync,
                probe_timeout: p.sync_deadline.max(p.worker_deadline) * 2,
            },
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                buckets: vec![Bucket::default(); window_s as usize],
                open_period: p.breaker_open,
                transitions: 0,
            }),
            metrics: None,
        }
    }

    /// Reports every transition as a [`Metric::BreakerTransition`].
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn transition(&self, inner: &mut Inner, to: &'static str) {
        inner.transitions += 1;
        if let Some(m) = &self.metrics {
            m.record(Metric::BreakerTransition { to });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves counters, not invariants
        // that matter for safety: keep going with what is there.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn second(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_secs()
    }

    fn totals(&self, inner: &Inner, now: Instant) -> (u32, u32, u32) {
        let current = self.second(now);
        inner
            .buckets
            .iter()
            .filter(|b| b.calls > 0 && current.saturating_sub(b.second) < self.policy.window_s)
            .fold((0, 0, 0), |(c, e, s), b| {
                (c + b.calls, e + b.errors, s + b.slow)
            })
    }

    fn open(&self, inner: &mut Inner, now: Instant, period: Duration) {
        inner.open_period = period;
        inner.state = State::Open {
            until: now + period,
        };
        self.transition(inner, "open");
        tracing::warn!(open_ms = period.as_millis() as u64, "breaker opened");
    }

    fn admit_now(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Admission::Sync,
            State::Open { until } if now < until => Admission::Open {
                retry_after: until - now,
            },
            State::Open { .. } => {
                inner.state = State::HalfOpen {
                    probe_since: Some(now),
                    healthy: 0,
                };
                self.transition(&mut inner, "half_open");
                tracing::info!("breaker half-open: probing");
                Admission::Probe
            }
            State::HalfOpen {
                probe_since,
                healthy,
            } => match probe_since {
                Some(since) if now.duration_since(since) < self.policy.probe_timeout => {
                    Admission::Open {
                        retry_after: Duration::from_secs(1),
                    }
                }
                _ => {
                    inner.state = State::HalfOpen {
                        probe_since: Some(now),
                        healthy,
                    };
                    Admission::Probe
                }
            },
        }
    }

    fn record_now(
        &self,
        now: Instant,
        admission: Admission,
        outcome: CallOutcome,
        latency: Duration,
    ) {
        let slow = outcome == CallOutcome::Timeout || latency > self.policy.slow_call;
        let failed = outcome != CallOutcome::Answered;
        let mut inner = self.lock();
        match (admission, inner.state) {
            (Admission::Probe, State::HalfOpen { healthy, .. }) => {
                if failed || slow {
                    let doubled = (inner.open_period * 2).min(self.policy.open_max);
                    self.open(&mut inner, now, doubled);
                } else if healthy + 1 >= self.policy.close_after {
                    inner.state = State::Closed;
                    inner.open_period = self.policy.open;
                    inner
                        .buckets
                        .iter_mut()
                        .for_each(|b| *b = Bucket::default());
                    self.transition(&mut inner, "closed");
                    tracing::info!("breaker closed");
                } else {
                    inner.state = State::HalfOpen {
                        probe_since: None,
                        healthy: healthy + 1,
                    };
                }
            }
            (Admission::Sync, State::Closed) => {
                let second = self.second(now);
                let idx = (second % self.policy.window_s) as usize;
                let bucket = &mut inner.buckets[idx];
                if bucket.second != second {
                    *bucket = Bucket {
                        second,
                        ..Bucket::default()
                    };
                }
                bucket.calls += 1;
                bucket.errors += failed as u32;
                bucket.slow += slow as u32;
                let (calls, errors, slows) = self.totals(&inner, now);
                let tripped = calls >= self.policy.min_calls
                    && (f64::from(errors) / f64::from(calls) > self.policy.error_rate
                        || f64::from(slows) / f64::from(calls) > self.policy.slow_rate);
                if tripped && !self.policy.never_open {
                    self.open(&mut inner, now, self.policy.open);
                }
            }
            // Calls that started before the state changed say nothing new.
            _ => {}
        }
    }

    fn snapshot_now(&self, now: Instant) -> BreakerSnapshot {
        let inner = self.lock();
        let (calls, errors, slows) = self.totals(&inner, now);
        let rate = |n: u32| {
            if calls == 0 {
                0.0
            } else {
                f64::from(n) / f64::from(calls)
            }
        };
        let (state, next_probe_in_ms, healthy_probes) = match inner.state {
            State::Closed => ("closed", None, 0),
            State::Open { until } => (
                "open",
                Some(until.saturating_duration_since(now).as_millis() as u64),
                0,
            ),
            State::HalfOpen { healthy, .. } => ("half_open", Some(0), healthy),
        };
        BreakerSnapshot {
            state,
            calls,
            error_rate: rate(errors),
            slow_rate: rate(slows),
            next_probe_in_ms,
            open_period_ms: inner.open_period.as_millis() as u64,
            healthy_probes,
            transitions: inner.transitions,
        }
    }
}

#[async_trait]
impl HealthGate for Breaker {
    async fn admit(&self) -> Admission {
        self.admit_now(Instant::now())
    }

    async fn record(&self, admission: Admission, outcome: CallOutcome, latency: Duration) {
        self.record_now(Instant::now(), admission, outcome, latency)
    }

    async fn snapshot(&self) -> BreakerSnapshot {
        self.snapshot_now(Instant::now())
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
