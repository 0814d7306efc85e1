//! [`Breaker`]: the [`HealthGate`] over any [`HealthStore`].
//!
//! In process (local mode) every decision reads the store, which is a mutex
//! away. Fleet-wide (AWS mode) a read is a network call, so the gate keeps a
//! copy of the state and window for `cache_ttl` and batches its own counts
//! into the next read: per instance that is one store call per `cache_ttl`
//! plus one per transition, whatever the request rate. Only the request that
//! finds the copy stale pays for the call; concurrent ones use the copy.
//! Past the store's budget (a few hundred instances on DynamoDB) one
//! refresh in `weight` reports, scaled, and the others read a copy
//! (`sample.rs`): the record's load stays flat as the fleet grows.
//!
//! When the store cannot be reached the gate fails *to the instance*: an
//! in-process breaker, fed every outcome all along, decides until the store
//! answers again. Failing closed (everything async) would turn a health-store
//! blip into an outage of the sync path, and the async path needs the same
//! database anyway; failing open (always sync) would make every user wait out
//! the deadline while the backend is down. The instance's own window still
//! sees the backend, so it still opens on a sick one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod exchange;
mod sample;

use super::latency::Latencies;
use super::rules::{BreakerState, Bucket, Mode, Rules};
use super::store::{Budget, HealthRecord, HealthStore, InProcessHealth};
use super::{Admission, BreakerSnapshot, CallOutcome, HealthGate};
use crate::config::Policy;
use crate::metrics::Metrics;
use crate::ports::{Clock, StoreError, TokioClock};

pub struct Breaker {
    rules: Rules,
    store: Arc<dyn HealthStore>,
    clock: Arc<dyn Clock>,
    /// How long a read of the store is trusted; 0 reads it every time.
    cache_ttl_ms: i64,
    /// `process`, `fleet`, or `instance` (a fleet gate's fallback).
    scope: &'static str,
    /// For a fallback: whether it is deciding now (its transitions are then
    /// logged and counted like the fleet's; otherwise it only shadows).
    deciding: AtomicBool,
    fallback: Option<Box<Breaker>>,
    cache: Mutex<Cache>,
    /// Held while a refresh runs, so only one call at a time goes out.
    refreshing: tokio::sync::Mutex<()>,
    latencies: Mutex<Latencies>,
    metrics: Option<Arc<dyn Metrics>>,
    /// The breaker group it guards (empty without a routes file).
    group: String,
    /// Draws which requests a fleet sheds, which refreshes report, which
    /// instances may claim a probe (seeded in tests).
    rng: Mutex<StdRng>,
    /// What the store's record takes (see [`HealthStore::budget`]).
    budget: Budget,
}

struct Cache {
    state: BreakerState,
    /// The window as the store last returned it.
    window: Vec<Bucket>,
    /// This instance's counts not yet sent to the store.
    pending: Vec<Bucket>,
    fetched_ms: Option<i64>,
    /// Why the last store call failed; decisions come from the fallback.
    unreachable: Option<String>,
    /// The sampling weight: one refresh in `weight` reports (1: all do).
    weight: u32,
    /// Multiplies the weight after a report failed (the record is
    /// throttled, or down): doubled by each failure, halved by each success.
    backoff: u32,
    /// Whether this instance may try to claim a due probe until its next
    /// refresh.
    may_claim: bool,
}

impl Breaker {
    /// The breaker of one process, on tokio's (pausable) clock.
    pub fn new(p: &Policy) -> Self {
        let clock = TokioClock::starting_at(crate::ports::SystemClock.now_ms());
        Self::build(p, Arc::new(InProcessHealth::default()), Arc::new(clock), 0).scoped("process")
    }

    /// A breaker shared through `store` by every instance that uses it.
    pub fn shared(
        p: &Policy,
        store: Arc<dyn HealthStore>,
        clock: Arc<dyn Clock>,
        cache_ttl: Duration,
    ) -> Self {
        let mut gate = Self::build(p, store, clock.clone(), cache_ttl.as_millis() as i64);
        let local = Self::build(p, Arc::new(InProcessHealth::default()), clock, 0);
        local.deciding.store(false, Ordering::Relaxed);
        gate.fallback = Some(Box::new(local.scoped("instance")));
        gate.scoped("fleet")
    }

    fn build(p: &Policy, store: Arc<dyn HealthStore>, clock: Arc<dyn Clock>, ttl: i64) -> Self {
        let rules = Rules::new(p);
        Self {
            budget: store.budget(rules.window_s),
            rules,
            store,
            clock,
            cache_ttl_ms: ttl,
            scope: "process",
            deciding: AtomicBool::new(true),
            fallback: None,
            cache: Mutex::new(Cache {
                state: BreakerState::initial(p.breaker_open),
                window: Vec::new(),
                pending: Vec::new(),
                fetched_ms: None,
                unreachable: None,
                weight: 1,
                backoff: 1,
                may_claim: true,
            }),
            refreshing: tokio::sync::Mutex::new(()),
            latencies: Mutex::new(Latencies::default()),
            metrics: None,
            group: String::new(),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    fn scoped(mut self, scope: &'static str) -> Self {
        self.scope = scope;
        self
    }

    /// Reports every transition this gate makes as a
    /// [`Metric::BreakerTransition`] (in a fleet, the instance whose write
    /// won reports it, so each transition is counted once).
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        if let Some(f) = self.fallback.take() {
            self.fallback = Some(Box::new(f.with_metrics(metrics.clone())));
        }
        self.metrics = Some(metrics);
        self
    }

    /// Names the breaker group it guards, in its metrics and logs.
    pub fn for_group(mut self, group: &str) -> Self {
        if let Some(f) = self.fallback.take() {
            self.fallback = Some(Box::new(f.for_group(group)));
        }
        self.group = group.to_string();
        self
    }

    /// Sheds by a generator seeded with `seed`: the same draws every run.
    pub fn seeded(self, seed: u64) -> Self {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = StdRng::seed_from_u64(seed);
        self
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // A copy of what the store holds: nothing a panicking holder could
        // leave inconsistent that the next refresh does not overwrite.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A uniform draw in [0, 1).
    fn draw(&self) -> f64 {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).random()
    }

    fn latencies(&self) -> MutexGuard<'_, Latencies> {
        self.latencies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this gate sheds load by the fleet's estimated calls in flight:
    /// only a fleet gate (the one with a fallback) does; in one process the
    /// engine counts its own calls exactly.
    fn sheds(&self) -> bool {
        self.fallback.is_some()
    }

    /// The fallback, while the store is unreachable.
    fn degraded(&self) -> Option<&Breaker> {
        let down = self.cache().unreachable.is_some();
        self.fallback.as_deref().filter(|_| down)
    }

    fn stale(&self, now: i64) -> bool {
        self.cache()
            .fetched_ms
            .is_none_or(|at| now - at >= self.cache_ttl_ms)
    }

    /// `may_probe`: whether this request may be the half-open probe. Where
    /// it may not (a call the client will cut before the policy deadline,
    /// which could not judge the backend), a due probe answers `Open`.
    async fn admit_at(&self, now: i64, may_probe: bool) -> Admission {
        if self.stale(now) {
            self.refresh(now).await;
        }
        if let Some(f) = self.degraded() {
            return Box::pin(f.admit_at(now, may_probe)).await;
        }
        let state = self.cache().state.clone();
        let (admission, next) = self.rules.admit(&state, now);
        if next.is_some() && !(may_probe && self.cache().may_claim) {
            return Admission::Open {
                retry_after: Duration::from_secs(1),
            };
        }
        let Some(next) = next else {
            if admission == Admission::Sync && self.sheds() {
                let share = self.rules.shed_share(self.load(now));
                if share > 0.0 && self.draw() < share {
                    return Admission::Shed;
                }
            }
            return admission;
        };
        match self.write(&state, next).await {
            Ok(()) => admission,
            Err(StoreError::Conflict) => {
                // Another instance changed it first (and is likely the probe).
                self.reload().await;
                match self.rules.admit(&self.cache().state, now) {
                    (a, None) => a,
                    (_, Some(_)) => Admission::Open {
                        retry_after: Duration::from_secs(1),
                    },
                }
            }
            Err(StoreError::Unavailable(_)) => match &self.fallback {
                Some(f) => Box::pin(f.admit_at(now, may_probe)).await,
                None => admission,
            },
        }
    }

    async fn record_at(
        &self,
        now: i64,
        admission: Admission,
        outcome: CallOutcome,
        latency: Duration,
    ) {
        let degraded = self.degraded().is_some();
        if let Some(f) = &self.fallback {
            // The fallback counts every backend call, so it is warm when needed.
            let own = match admission {
                Admission::Probe if !degraded => Admission::Sync,
                a => a,
            };
            f.record(own, outcome, latency).await;
        }
        if degraded || matches!(admission, Admission::Open { .. } | Admission::Shed) {
            return;
        }
        self.latencies().push(now, latency);
        let (slow, failed) = self.rules.judge(outcome, latency);
        if admission == Admission::Probe {
            return self.after_probe(now, !(slow || failed)).await;
        }
        let tripped = {
            let mut c = self.cache();
            // Calls that started before the state changed say nothing new.
            if c.state.mode != Mode::Closed {
                return;
            }
            let second = now.div_euclid(1000);
            let bucket = Bucket {
                second,
                calls: 1,
                errors: failed as u32,
                slow: slow as u32,
                busy_ms: latency.as_millis() as u64,
                refreshes: 0,
            };
            match c.pending.iter_mut().find(|b| b.second == second) {
                Some(b) => b.add(&bucket),
                None => c.pending.push(bucket),
            }
            let totals = self
                .rules
                .totals(&c.state, c.window.iter().chain(&c.pending), now);
            // In a sampled fleet a tripped copy waits for the next refresh,
            // so readers of one view do not all call the store at once.
            self.rules.tripped(&totals) && c.weight == 1
        };
        if tripped || self.stale(now) {
            self.refresh(now).await;
        }
    }

    /// The fleet's backend calls in flight, estimated from its window.
    fn load(&self, now: i64) -> f64 {
        let c = self.cache();
        self.rules.load(c.window.iter().chain(&c.pending), now)
    }

    async fn after_probe(&self, now: i64, healthy: bool) {
        for _ in 0..2 {
            let state = self.cache().state.clone();
            let Some(next) = self.rules.after_probe(&state, now, healthy) else {
                return;
            };
            match self.write(&state, next).await {
                Err(StoreError::Conflict) => self.reload().await,
                _ => return,
            }
        }
    }

    async fn release_probe(&self) {
        if let Some(f) = self.degraded() {
            return f.release(Admission::Probe).await;
        }
        for _ in 0..2 {
            let state = self.cache().state.clone();
            let Some(next) = self.rules.release_probe(&state) else {
                return;
            };
            match self.write(&state, next).await {
                Err(StoreError::Conflict) => self.reload().await,
                _ => return,
            }
        }
    }

    async fn snapshot_at(&self, now: i64) -> BreakerSnapshot {
        if self.stale(now) {
            self.refresh(now).await;
        }
        if let Some(f) = self.degraded() {
            let mut s = f.snapshot().await;
            s.store_error = self.cache().unreachable.clone();
            return s;
        }
        let c = self.cache();
        let t = self
            .rules
            .totals(&c.state, c.window.iter().chain(&c.pending), now);
        let rate = |n: u32| match t.calls {
            0 => 0.0,
            calls => f64::from(n) / f64::from(calls),
        };
        let (next_probe_in_ms, healthy_probes) = match c.state.mode {
            Mode::Closed => (None, 0),
            Mode::Open { until_ms } => (Some((until_ms - now).max(0) as u64), 0),
            Mode::HalfOpen { healthy, .. } => (Some(0), healthy),
        };
        let window_from =
            (now - self.rules.window_s * 1000).max(c.state.window_from_s.saturating_mul(1000));
        BreakerSnapshot {
            state: c.state.name(),
            scope: self.scope,
            calls: t.calls,
            error_rate: rate(t.errors),
            slow_rate: rate(t.slow),
            p95_ms: self.latencies().p95_since(window_from),
            fleet_inflight: self
                .sheds()
                .then(|| self.rules.load(c.window.iter().chain(&c.pending), now)),
            next_probe_in_ms,
            open_period_ms: c.state.open_period_ms,
            healthy_probes,
            transitions: c.state.transitions,
            closed_for_ms: closed_for(&c.state, now).map(|d| d.as_millis() as u64),
            store_error: None,
        }
    }
}

impl Breaker {
    /// The breaker as its store holds it now, read without sending counts
    /// or writing anything (the operator's `breaker show`).
    pub async fn observe(&self) -> Result<BreakerSnapshot, StoreError> {
        let now = self.clock.now_ms();
        let record = self
            .call(self.store.exchange(&[], self.rules.window_s))
            .await?;
        {
            let mut c = self.cache();
            if let Some(state) = record.state {
                c.state = state;
            }
            c.window = record.window;
            c.fetched_ms = Some(now);
        }
        Ok(self.snapshot_at(now).await)
    }

    async fn reset_at(&self, now: i64) -> Result<(), StoreError> {
        if let Some(f) = &self.fallback {
            f.reset().await?;
        }
        // Each round reads the state afresh; it loses only to a transition
        // written in between, and a handful of those in a row means a
        // store that is not settling: say so rather than spin.
        for _ in 0..5 {
            let state = match self
                .call(self.store.exchange(&[], self.rules.window_s))
                .await?
            {
                HealthRecord { state: Some(s), .. } => s,
                _ => self.cache().state.clone(),
            };
            match self.write(&state, self.rules.reset(&state, now)).await {
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
                Ok(()) => {
                    tracing::warn!(scope = self.scope, group = self.group, "breaker reset");
                    // A sampled fleet reads views: give them the reset now.
                    if self
                        .call(self.store.read_view())
                        .await
                        .is_ok_and(|v| v.is_some())
                    {
                        self.republish().await;
                    }
                    return Ok(());
                }
            }
        }
        Err(StoreError::Unavailable(
            "the breaker kept changing while being reset: try again".into(),
        ))
    }
}

fn closed_for(s: &BreakerState, now: i64) -> Option<Duration> {
    match (s.mode, s.closed_at_ms) {
        (Mode::Closed, Some(at)) => Some(Duration::from_millis((now - at).max(0) as u64)),
        _ => None,
    }
}

#[async_trait::async_trait]
impl HealthGate for Breaker {
    async fn admit(&self) -> Admission {
        self.admit_at(self.clock.now_ms(), true).await
    }

    async fn admit_without_probe(&self) -> Admission {
        self.admit_at(self.clock.now_ms(), false).await
    }

    async fn record(&self, admission: Admission, outcome: CallOutcome, latency: Duration) {
        self.record_at(self.clock.now_ms(), admission, outcome, latency)
            .await
    }

    async fn release(&self, admission: Admission) {
        if admission == Admission::Probe {
            Box::pin(self.release_probe()).await
        }
    }

    async fn snapshot(&self) -> BreakerSnapshot {
        self.snapshot_at(self.clock.now_ms()).await
    }

    async fn closed_for(&self) -> Option<Duration> {
        if let Some(f) = self.degraded() {
            return f.closed_for().await;
        }
        closed_for(&self.cache().state, self.clock.now_ms())
    }

    async fn reset(&self) -> Result<(), StoreError> {
        Box::pin(self.reset_at(self.clock.now_ms())).await
    }
}
