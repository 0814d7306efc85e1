//! A fleet larger than its store's report budget: sampled reports, views,
//! backoff. (At scale, with DynamoDB's limits: `tests/engine/fleet_sim.rs`.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::advance;

use super::rules::{BreakerState, Bucket, Mode};
use super::store::{Budget, HealthRecord, View};
use super::*;
use crate::config::Policy;
use crate::ports::{StoreError, TokioClock};

/// An in-process store with a small budget, counting its calls, whose
/// reports or publishes can be made to fail.
struct Counted {
    inner: InProcessHealth,
    reports_per_s: f64,
    reports: AtomicUsize,
    record_reads: AtomicUsize,
    view_reads: AtomicUsize,
    publishes: AtomicUsize,
    refuse_reports: AtomicBool,
    refuse_publishes: AtomicBool,
}

fn throttled() -> StoreError {
    StoreError::Unavailable("ProvisionedThroughputExceededException".into())
}

impl Counted {
    fn new(reports_per_s: f64) -> Arc<Self> {
        Arc::new(Self {
            inner: InProcessHealth::default(),
            reports_per_s,
            reports: AtomicUsize::new(0),
            record_reads: AtomicUsize::new(0),
            view_reads: AtomicUsize::new(0),
            publishes: AtomicUsize::new(0),
            refuse_reports: AtomicBool::new(false),
            refuse_publishes: AtomicBool::new(false),
        })
    }

    fn take(counter: &AtomicUsize) -> usize {
        counter.swap(0, Ordering::SeqCst)
    }
}

#[async_trait]
impl HealthStore for Counted {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        if counts.is_empty() {
            self.record_reads.fetch_add(1, Ordering::SeqCst);
        } else {
            self.reports.fetch_add(1, Ordering::SeqCst);
            if self.refuse_reports.load(Ordering::SeqCst) {
                return Err(throttled());
            }
        }
        self.inner.exchange(counts, window_s).await
    }
    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        self.inner.replace(next).await
    }
    async fn read_view(&self) -> Result<Option<View>, StoreError> {
        self.view_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_view().await
    }
    async fn publish_view(&self, view: &View) -> Result<(), StoreError> {
        self.publishes.fetch_add(1, Ordering::SeqCst);
        if self.refuse_publishes.load(Ordering::SeqCst) {
            return Err(throttled());
        }
        self.inner.publish_view(view).await
    }
    fn budget(&self, _window_s: i64) -> Budget {
        Budget {
            reports_per_s: self.reports_per_s,
            views_per_s: 2.0,
        }
    }
}

const TTL: Duration = Duration::from_millis(1000);

fn fleet(n: u64, store: &Arc<Counted>) -> Vec<Breaker> {
    let p = Policy {
        breaker_min_calls: 10,
        error_rate_threshold: 0.10,
        ..Policy::default()
    };
    let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
    (0..n)
        .map(|i| Breaker::shared(&p, store.clone(), clock.clone(), TTL).seeded(i))
        .collect()
}

/// One second: every gate admits one request whose call ends at once.
async fn second(gates: &[Breaker], outcome: CallOutcome) -> Vec<Admission> {
    let mut seen = Vec::new();
    for g in gates {
        let a = g.admit().await;
        if let Admission::Sync | Admission::Probe = a {
            g.record(a, outcome, Duration::from_millis(10)).await;
        }
        seen.push(a);
    }
    advance(TTL).await;
    seen
}

/// `n` seconds of calls the backend answers.
async fn healthy(gates: &[Breaker], n: usize) {
    for _ in 0..n {
        second(gates, CallOutcome::Answered).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_fleet_over_budget_samples_its_reports_and_reads_views() {
    // 100 instances, a record that takes 10 reports a second.
    let store = Counted::new(10.0);
    let gates = fleet(100, &store);
    healthy(&gates, 5).await;
    Counted::take(&store.reports);
    Counted::take(&store.view_reads);
    healthy(&gates, 10).await;
    // About 10 a second report; the rest read a view.
    let reports = Counted::take(&store.reports);
    assert!((50..=150).contains(&reports), "{reports} reports in 10 s");
    assert!(Counted::take(&store.view_reads) >= 850);
    assert!(Counted::take(&store.publishes) > 0);
    // The scaled sample stands for the fleet: 100 calls a second.
    let s = gates[7].snapshot().await;
    assert_eq!(s.scope, "fleet");
    let per_second = f64::from(s.calls) / 30.0;
    assert!((50.0..=150.0).contains(&per_second), "{s:?}");
    // A failing backend still opens it for all, within a few seconds.
    let mut opened_after = None;
    for t in 0..5 {
        let seen = second(&gates, CallOutcome::Error).await;
        if seen.iter().all(|a| matches!(a, Admission::Open { .. })) {
            opened_after = Some(t);
            break;
        }
    }
    assert!(opened_after.is_some(), "not every instance went async");
    assert_eq!(gates[0].snapshot().await.transitions, 1);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_report_backs_off_to_the_view_not_to_the_instance() {
    let store = Counted::new(10.0);
    let gates = fleet(100, &store);
    healthy(&gates, 5).await;
    store.refuse_reports.store(true, Ordering::SeqCst);
    healthy(&gates, 15).await;
    Counted::take(&store.reports);
    healthy(&gates, 5).await;
    // Each refusal doubles the instance's weight: 15 s on, the fleet tries
    // a few times a second, not the 100 a second of every refresh.
    let late = Counted::take(&store.reports);
    assert!(late <= 5 * 15, "{late} reports tried in 5 s");
    // And they stay on the fleet's breaker: the views, which the record's
    // readers keep publishing, stand in for the refused reports.
    for g in &gates[..10] {
        assert_eq!(g.snapshot().await.scope, "fleet");
    }
}

#[tokio::test(start_paused = true)]
async fn a_view_that_stops_being_refreshed_is_read_around_without_a_herd() {
    // 100 instances, a weight of 50.
    let store = Counted::new(2.0);
    let gates = fleet(100, &store);
    healthy(&gates, 5).await;
    // The views stay closed; the record opens.
    store.refuse_publishes.store(true, Ordering::SeqCst);
    let open = BreakerState {
        mode: Mode::Open { until_ms: i64::MAX },
        version: 1,
        transitions: 1,
        ..BreakerState::initial(Duration::from_secs(5))
    };
    store.inner.replace(&open).await.expect("open");
    healthy(&gates, 5).await;
    // Once the views are too old to trust, about one refresh in `weight`
    // reads the record: not all 100 a second.
    Counted::take(&store.record_reads);
    healthy(&gates, 20).await;
    let reads = Counted::take(&store.record_reads);
    assert!(
        (10..=20 * 20).contains(&reads),
        "{reads} record reads in 20 s"
    );
    // Past 30 cache periods every instance reads around them: all async.
    healthy(&gates, 6).await;
    let seen = second(&gates, CallOutcome::Answered).await;
    assert!(
        seen.iter().all(|a| matches!(a, Admission::Open { .. })),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_view_older_than_the_state_an_instance_has_seen_does_not_undo_it() {
    let store = Counted::new(10.0);
    // A state the views hold (closed, version 1).
    let closed = BreakerState {
        version: 1,
        ..BreakerState::initial(Duration::from_secs(5))
    };
    store.inner.replace(&closed).await.expect("first state");
    let gates = fleet(100, &store);
    healthy(&gates, 5).await;
    // The views stay as they are (closed) while another instance opens the
    // breaker in the record.
    store.refuse_publishes.store(true, Ordering::SeqCst);
    let open = BreakerState {
        mode: Mode::Open { until_ms: i64::MAX },
        version: 2,
        transitions: 1,
        ..closed
    };
    store.inner.replace(&open).await.expect("open");
    // Reporters read the record and go async; reading the older view next
    // must not bring them back to sync.
    let mut went_async = vec![false; gates.len()];
    for _ in 0..3 {
        for (i, a) in second(&gates, CallOutcome::Answered)
            .await
            .iter()
            .enumerate()
        {
            match a {
                Admission::Open { .. } => went_async[i] = true,
                a => assert!(!went_async[i], "instance {i} back to {a:?}"),
            }
        }
    }
    assert!(went_async.iter().filter(|o| **o).count() >= 10);
}
