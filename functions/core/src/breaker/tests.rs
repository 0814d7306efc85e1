//! Breaker behaviour under paused tokio time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::rules::{BreakerState, Bucket};
use super::store::{HealthRecord, View};
use super::*;
use crate::config::Policy;
use crate::metrics::{Metric, Metrics};
use crate::ports::{StoreError, TokioClock};
use tokio::time::advance;

fn policy() -> Policy {
    Policy {
        breaker_min_calls: 10,
        error_rate_threshold: 0.10,
        slow_rate_threshold: 0.50,
        slow_call: Duration::from_millis(1000),
        breaker_open: Duration::from_millis(5000),
        breaker_open_max: Duration::from_millis(40_000),
        breaker_close_after: 3,
        ..Policy::default()
    }
}

async fn calls(b: &Breaker, n: u32, outcome: CallOutcome, latency_ms: u64) {
    for _ in 0..n {
        let a = b.admit().await;
        b.record(a, outcome, Duration::from_millis(latency_ms))
            .await;
    }
}

#[tokio::test(start_paused = true)]
async fn error_rate_at_threshold_stays_closed_above_opens() {
    let b = Breaker::new(&policy());
    // 1 error in 10 = 0.10: not above the threshold.
    calls(&b, 9, CallOutcome::Answered, 5).await;
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
    // 2 in 11 = 0.18: above.
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "open");
    assert!(matches!(b.admit().await, Admission::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_before_judging() {
    let b = Breaker::new(&policy());
    calls(&b, 9, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "open");
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_it_too() {
    let b = Breaker::new(&policy());
    // 5 slow of 10 = 0.5: not above; the 11th slow makes 6/11.
    calls(&b, 5, CallOutcome::Answered, 5).await;
    calls(&b, 5, CallOutcome::Answered, 1500).await;
    assert_eq!(b.snapshot().await.state, "closed");
    calls(&b, 1, CallOutcome::Answered, 1500).await;
    assert_eq!(b.snapshot().await.state, "open");
}

#[tokio::test(start_paused = true)]
async fn old_calls_leave_the_window() {
    let b = Breaker::new(&policy());
    calls(&b, 9, CallOutcome::Error, 5).await;
    advance(Duration::from_secs(31)).await;
    calls(&b, 1, CallOutcome::Error, 5).await;
    let s = b.snapshot().await;
    assert_eq!((s.state, s.calls), ("closed", 1));
}

#[tokio::test(start_paused = true)]
async fn recovery_needs_consecutive_healthy_probes() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_millis(4999)).await;
    assert!(matches!(b.admit().await, Admission::Open { .. }));
    advance(Duration::from_millis(1)).await;
    // One probe at a time.
    let probe = b.admit().await;
    assert_eq!(probe, Admission::Probe);
    assert!(matches!(b.admit().await, Admission::Open { .. }));
    b.record(probe, CallOutcome::Answered, Duration::from_millis(5))
        .await;
    for _ in 0..2 {
        let p = b.admit().await;
        assert_eq!(p, Admission::Probe);
        b.record(p, CallOutcome::Answered, Duration::from_millis(5))
            .await;
    }
    assert_eq!(b.snapshot().await.state, "closed");
    assert_eq!(b.admit().await, Admission::Sync);
}

#[tokio::test(start_paused = true)]
async fn failed_probe_doubles_the_open_period_up_to_the_cap() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    let mut expected = 5000;
    for _ in 0..6 {
        advance(Duration::from_millis(expected)).await;
        let p = b.admit().await;
        assert_eq!(p, Admission::Probe);
        b.record(p, CallOutcome::Timeout, Duration::from_millis(3000))
            .await;
        expected = (expected * 2).min(40_000);
        assert_eq!(b.snapshot().await.open_period_ms, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn a_flapping_backend_causes_few_transitions() {
    let b = Breaker::new(&policy());
    // Alternate: one healthy call, one failing, for ten minutes of traffic.
    for i in 0..6000u32 {
        let a = b.admit().await;
        if !matches!(a, Admission::Open { .. }) {
            let outcome = if i % 2 == 0 {
                CallOutcome::Answered
            } else {
                CallOutcome::Error
            };
            b.record(a, outcome, Duration::from_millis(5)).await;
        }
        advance(Duration::from_millis(100)).await;
    }
    // Each failed probe doubles the open period (capped at 40 s), so ten
    // minutes hold at most a few dozen transitions, not thousands.
    let t = b.snapshot().await.transitions;
    assert!(t <= 40, "{t} transitions");
}

#[tokio::test(start_paused = true)]
async fn force_sync_never_opens() {
    let p = Policy {
        force_mode: crate::config::ForceMode::Sync,
        ..policy()
    };
    let b = Breaker::new(&p);
    calls(&b, 50, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
}

#[tokio::test(start_paused = true)]
async fn a_lost_probe_does_not_hold_the_slot_forever() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_millis(5000)).await;
    assert_eq!(b.admit().await, Admission::Probe); // never recorded
    advance(Duration::from_secs(60)).await;
    assert_eq!(b.admit().await, Admission::Probe);
}

struct Recorder(std::sync::Mutex<Vec<&'static str>>);

impl Metrics for Recorder {
    fn record(&self, metric: Metric) {
        if let Metric::BreakerTransition { to, .. } = metric {
            self.0.lock().unwrap().push(to);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_reported_as_a_metric() {
    let recorder = Arc::new(Recorder(Default::default()));
    let b = Breaker::new(&policy()).with_metrics(recorder.clone());
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_secs(5)).await;
    for _ in 0..3 {
        let p = b.admit().await;
        b.record(p, CallOutcome::Answered, Duration::from_millis(5))
            .await;
    }
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen, vec!["open", "half_open", "closed"]);
    assert_eq!(b.snapshot().await.transitions, 3);
}

// --- A fleet: gates sharing one store -------------------------------------

/// A shared store that can be switched off, standing in for DynamoDB.
#[derive(Default)]
struct Switchable {
    inner: InProcessHealth,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable("switched off".into())),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl HealthStore for Switchable {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        self.check()?;
        self.inner.exchange(counts, window_s).await
    }
    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        self.check()?;
        self.inner.replace(next).await
    }
    async fn read_view(&self) -> Result<Option<View>, StoreError> {
        self.check()?;
        self.inner.read_view().await
    }
    async fn publish_view(&self, view: &View) -> Result<(), StoreError> {
        self.check()?;
        self.inner.publish_view(view).await
    }
}

const TTL: Duration = Duration::from_millis(1000);

fn fleet(n: usize, store: &Arc<Switchable>) -> Vec<Breaker> {
    let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
    (0..n)
        .map(|_| Breaker::shared(&policy(), store.clone(), clock.clone(), TTL))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn instances_add_up_to_one_window() {
    let store = Arc::new(Switchable::default());
    let gates = fleet(2, &store);
    // Five errors each: neither alone reaches BREAKER_MIN_CALLS (10).
    calls(&gates[0], 5, CallOutcome::Error, 5).await;
    calls(&gates[1], 5, CallOutcome::Error, 5).await;
    assert_eq!(gates[0].snapshot().await.state, "closed");
    // Within one cache period both have sent their counts and one opens
    // it; within another every instance has seen it.
    for _ in 0..2 {
        advance(TTL).await;
        for g in &gates {
            g.admit().await;
        }
    }
    for g in &gates {
        let s = g.snapshot().await;
        assert_eq!((s.state, s.scope), ("open", "fleet"));
        assert!(matches!(g.admit().await, Admission::Open { .. }));
    }
    // One transition, not one per instance.
    assert_eq!(gates[1].snapshot().await.transitions, 1);
}

#[tokio::test(start_paused = true)]
async fn one_instance_opening_it_opens_it_for_all() {
    let store = Arc::new(Switchable::default());
    let gates = fleet(2, &store);
    assert_eq!(gates[1].admit().await, Admission::Sync);
    calls(&gates[0], 10, CallOutcome::Error, 5).await;
    assert!(matches!(gates[0].admit().await, Admission::Open { .. }));
    // The other sees it once its copy is older than the cache period.
    advance(TTL).await;
    assert!(matches!(gates[1].admit().await, Admission::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn the_fleet_elects_one_probe_and_recovers_together() {
    let store = Arc::new(Switchable::default());
    let gates = fleet(3, &store);
    calls(&gates[0], 10, CallOutcome::Error, 5).await;
    advance(Duration::from_millis(5000)).await;
    let admissions = [
        gates[0].admit().await,
        gates[1].admit().await,
        gates[2].admit().await,
    ];
    let probes = admissions
        .iter()
        .filter(|a| **a == Admission::Probe)
        .count();
    assert_eq!(probes, 1, "{admissions:?}");
    // Whoever holds the probe reports; healthy probes from any instance
    // count toward closing it, and every instance follows within a period.
    for (i, a) in admissions.iter().enumerate() {
        if *a == Admission::Probe {
            gates[i]
                .record(*a, CallOutcome::Answered, Duration::from_millis(5))
                .await;
        }
    }
    let mut waited = Duration::ZERO;
    while waited < Duration::from_secs(10) {
        let mut all_sync = true;
        for g in &gates {
            let a = g.admit().await;
            all_sync &= a == Admission::Sync;
            if a == Admission::Probe {
                g.record(a, CallOutcome::Answered, Duration::from_millis(5))
                    .await;
            }
        }
        if all_sync {
            break;
        }
        advance(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert!(waited <= 2 * TTL, "recovered after {waited:?}");
    assert_eq!(gates[2].snapshot().await.transitions, 3);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_leaves_each_instance_its_own_breaker() {
    let store = Arc::new(Switchable::default());
    let gates = fleet(2, &store);
    store.down.store(true, Ordering::SeqCst);
    advance(TTL).await;
    // Still serving sync while the backend is fine...
    assert_eq!(gates[0].admit().await, Admission::Sync);
    let s = gates[0].snapshot().await;
    assert_eq!(s.scope, "instance");
    assert!(s.store_error.is_some());
    // ...and still opening on a failing backend, alone.
    calls(&gates[0], 10, CallOutcome::Error, 5).await;
    assert!(matches!(gates[0].admit().await, Admission::Open { .. }));
    assert_eq!(gates[1].admit().await, Admission::Sync);
    // Back to the fleet's view once the store answers again.
    store.down.store(false, Ordering::SeqCst);
    advance(TTL).await;
    let s = gates[0].snapshot().await;
    assert_eq!((s.scope, s.state), ("fleet", "closed"));
}

#[tokio::test(start_paused = true)]
async fn the_instance_breaker_is_warm_when_the_store_goes() {
    let store = Arc::new(Switchable::default());
    let gates = fleet(1, &store);
    // Nine errors counted while the store was up...
    calls(&gates[0], 9, CallOutcome::Error, 5).await;
    store.down.store(true, Ordering::SeqCst);
    advance(TTL).await;
    // ...so the first failure after it goes opens the instance's breaker.
    calls(&gates[0], 1, CallOutcome::Error, 5).await;
    assert!(matches!(gates[0].admit().await, Admission::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn p95_and_time_since_recovery_are_reported() {
    let b = Breaker::new(&policy());
    for ms in 1..=20 {
        let a = b.admit().await;
        b.record(a, CallOutcome::Answered, Duration::from_millis(ms))
            .await;
    }
    let s = b.snapshot().await;
    assert_eq!((s.p95_ms, s.closed_for_ms), (Some(19), None));
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_secs(5)).await;
    for _ in 0..3 {
        let p = b.admit().await;
        b.record(p, CallOutcome::Answered, Duration::from_millis(5))
            .await;
    }
    advance(Duration::from_millis(1500)).await;
    assert_eq!(b.snapshot().await.closed_for_ms, Some(1500));
}

#[tokio::test(start_paused = true)]
async fn the_fleet_sheds_the_share_of_load_above_sync_max_inflight() {
    let store = Arc::new(Switchable::default());
    let p = Policy {
        sync_max_inflight: 4,
        ..policy()
    };
    let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
    let gates: Vec<Breaker> = (0..2)
        .map(|i| Breaker::shared(&p, store.clone(), clock.clone(), TTL).seeded(i))
        .collect();
    let local = Breaker::new(&p);
    // Two seconds in which 10 one-second calls ended per second: on
    // average 10 calls were in flight, 2.5 times SYNC_MAX_INFLIGHT.
    for _ in 0..2 {
        for g in [&gates[0], &local] {
            calls(g, 10, CallOutcome::Answered, 1000).await;
        }
        advance(Duration::from_secs(1)).await;
    }
    gates[0].admit().await; // sends its counts
    advance(TTL).await;
    let s = gates[1].snapshot().await;
    assert_eq!(s.state, "closed");
    assert_eq!(s.fleet_inflight, Some(10.0));
    // 1 - 4/10 = 60% of sync attempts go async (`overloaded`).
    let mut shed = 0;
    for _ in 0..1000 {
        match gates[1].admit().await {
            Admission::Shed => shed += 1,
            a => assert_eq!(a, Admission::Sync),
        }
    }
    assert!((520..=680).contains(&shed), "{shed} of 1000 shed");
    // One process counts its own calls exactly (the engine's semaphore):
    // its breaker never sheds by estimate.
    for _ in 0..100 {
        assert_eq!(local.admit().await, Admission::Sync);
    }
    assert_eq!(local.snapshot().await.fleet_inflight, None);
}

#[tokio::test(start_paused = true)]
async fn the_instance_breaker_reports_transitions_only_while_it_decides() {
    let store = Arc::new(Switchable::default());
    let recorder = Arc::new(Recorder(Default::default()));
    let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
    let gate = Breaker::shared(&policy(), store.clone(), clock, TTL).with_metrics(recorder.clone());
    // The fleet opens; the shadowing instance breaker opens too, silently.
    calls(&gate, 10, CallOutcome::Error, 5).await;
    assert_eq!(*recorder.0.lock().unwrap(), vec!["open"]);
    // Without the store the instance breaker decides, and is heard.
    store.down.store(true, Ordering::SeqCst);
    advance(Duration::from_secs(5)).await;
    assert_eq!(gate.admit().await, Admission::Probe);
    assert_eq!(*recorder.0.lock().unwrap(), vec!["open", "half_open"]);
}

#[tokio::test(start_paused = true)]
async fn the_instance_breaker_takes_the_fleets_verdict_rather_than_probing_alone() {
    let store = Arc::new(Switchable::default());
    let gates = fleet(2, &store);
    // Instance 0's own calls open its breaker, and the fleet's.
    calls(&gates[0], 10, CallOutcome::Error, 5).await;
    assert!(matches!(gates[0].admit().await, Admission::Open { .. }));
    // The fleet recovers through instance 1's probes.
    advance(Duration::from_secs(6)).await;
    for _ in 0..3 {
        let p = gates[1].admit().await;
        assert_eq!(p, Admission::Probe);
        gates[1]
            .record(p, CallOutcome::Answered, Duration::from_millis(5))
            .await;
    }
    advance(TTL).await;
    assert_eq!(gates[0].admit().await, Admission::Sync);
    // The store goes: instance 0 decides alone, from the fleet's closed
    // breaker, not from its own expired open one (a probe).
    store.down.store(true, Ordering::SeqCst);
    advance(TTL).await;
    assert_eq!(gates[0].admit().await, Admission::Sync);
    assert_eq!(gates[0].snapshot().await.scope, "instance");
}

#[tokio::test(start_paused = true)]
async fn a_reset_closes_it_on_a_fresh_window_at_the_base_open_period() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    // A failed probe doubles the open period.
    advance(Duration::from_secs(5)).await;
    calls(&b, 1, CallOutcome::Error, 5).await;
    let open = b.snapshot().await;
    assert_eq!((open.state, open.open_period_ms), ("open", 10_000));
    b.reset().await.unwrap();
    advance(Duration::from_millis(1000)).await;
    let s = b.snapshot().await;
    assert_eq!((s.state, s.calls, s.open_period_ms), ("closed", 0, 5000));
    assert_eq!(s.transitions, open.transitions + 1);
    assert_eq!(s.closed_for_ms, Some(1000));
    assert_eq!(b.admit().await, Admission::Sync);
    // The window is fresh: nine more errors do not trip it, a tenth does.
    calls(&b, 9, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "open");
}

#[tokio::test(start_paused = true)]
async fn a_reset_from_outside_the_fleet_closes_it_for_every_instance() {
    let store = Arc::new(Switchable::default());
    let mut gates = fleet(3, &store);
    // The operator's tool: a gate of its own on the same store.
    let tool = gates.pop().unwrap();
    calls(&gates[0], 10, CallOutcome::Error, 5).await;
    let seen = tool.observe().await.unwrap();
    assert_eq!((seen.state, seen.calls), ("open", 10));
    // In the same second: the errors that opened it do not count again.
    tool.reset().await.unwrap();
    assert_eq!(tool.observe().await.unwrap().state, "closed");
    // Within one cache period every instance admits again.
    advance(TTL).await;
    for g in &gates {
        assert_eq!(g.admit().await, Admission::Sync);
        assert_eq!(g.snapshot().await.state, "closed");
    }
    // With the store down, a reset says so.
    store.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        tool.reset().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(tool.observe().await.is_err());
}
