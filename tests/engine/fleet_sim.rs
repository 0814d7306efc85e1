//! Issue 17, first step: the fleet breaker simulated at fleet sizes, over a
//! health store that enforces DynamoDB's per-item write limit, driving the
//! real gate code on paused time. This measures today's layout (one item
//! per breaker group) as the reference a sharded layout must improve on.
//!
//! Each of N instances sends one request per second (staggered), whose
//! backend call takes 50 ms; the backend fails from 20 s to 50 s. A write
//! (an `exchange` carrying counts, or a `replace`) costs the item's size in
//! write units (1 KB each); past 1,000 units in one second the store answers
//! as DynamoDB does, with a throttling error, and applies nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failover_core::breaker::rules::{BreakerState, Bucket};
use failover_core::breaker::store::HealthRecord;
use failover_core::breaker::{
    Admission, Breaker, CallOutcome, HealthGate, HealthStore, InProcessHealth,
};
use failover_core::ports::{StoreError, TokioClock};
use failover_core::Policy;
use tokio::time::Instant;

/// DynamoDB's per-item (per-partition) write capacity, units per second.
const ITEM_WCU_PER_S: usize = 1000;

/// One item behind DynamoDB's write limit.
struct Limited {
    inner: InProcessHealth,
    /// Units spent per second since the start.
    spent: Mutex<HashMap<u64, usize>>,
    start: Instant,
    writes: AtomicUsize,
    throttled: AtomicUsize,
    calls: AtomicUsize,
}

impl Limited {
    fn new() -> Self {
        Self {
            inner: InProcessHealth::default(),
            spent: Mutex::new(HashMap::new()),
            start: Instant::now(),
            writes: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        }
    }

    /// Spends the units of one write of an item holding `slots` window
    /// slots (~40 bytes each, plus ~500 bytes of state), or refuses it.
    fn write(&self, slots: usize) -> Result<(), StoreError> {
        let units = (500 + 40 * slots).div_ceil(1024);
        let second = self.start.elapsed().as_secs();
        let mut spent = self.spent.lock().expect("spent");
        let used = spent.entry(second).or_default();
        if *used + units > ITEM_WCU_PER_S {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable(
                "ThrottlingException: Throughput exceeds the current capacity for one or more \
                 global secondary indexes or the item"
                    .into(),
            ));
        }
        *used += units;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl HealthStore for Limited {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if counts.iter().any(|c| c.calls > 0) {
            self.write(window_s as usize)?;
        }
        self.inner.exchange(counts, window_s).await
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.write(30)?;
        self.inner.replace(next).await
    }
}

/// What one simulation of `n` instances measured.
#[derive(Debug)]
struct Report {
    n: usize,
    throttled: usize,
    calls_per_instance_s: f64,
    /// From the failure until every instance answers `circuit_open`.
    all_open_after: Option<Duration>,
    most_probes_at_once: usize,
    /// From the recovery until every instance is back to sync.
    all_sync_after: Option<Duration>,
}

const FAIL_AT: Duration = Duration::from_secs(20);
const RECOVER_AT: Duration = Duration::from_secs(50);
const END: Duration = Duration::from_secs(90);

async fn simulate(n: usize) -> Report {
    let policy = Policy {
        breaker_min_calls: 20,
        health_cache: Duration::from_millis(1000),
        ..Policy::default()
    };
    let clock = Arc::new(TokioClock::starting_at(1_800_000_000_000));
    let store = Arc::new(Limited::new());
    let gates: Vec<Arc<Breaker>> = (0..n)
        .map(|_| {
            Arc::new(Breaker::shared(
                &policy,
                store.clone(),
                clock.clone(),
                policy.health_cache,
            ))
        })
        .collect();
    let start = Instant::now();
    let probes = Arc::new(AtomicUsize::new(0));
    let most_probes = Arc::new(AtomicUsize::new(0));
    // The last answer of each instance: true when it was `circuit_open`.
    let mut last_open = vec![false; n];
    let (mut all_open_at, mut all_sync_at) = (None, None);
    let step = Duration::from_secs(1) / n as u32;
    while start.elapsed() < END {
        for (i, gate) in gates.iter().enumerate() {
            let now = start.elapsed();
            let failing = now >= FAIL_AT && now < RECOVER_AT;
            let admission = gate.admit().await;
            last_open[i] = matches!(admission, Admission::Open { .. } | Admission::Shed);
            if let Admission::Sync | Admission::Probe = admission {
                let (gate, probes, most) = (gate.clone(), probes.clone(), most_probes.clone());
                tokio::spawn(async move {
                    if admission == Admission::Probe {
                        let now = probes.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let outcome = match failing {
                        true => CallOutcome::Error,
                        false => CallOutcome::Answered,
                    };
                    gate.record(admission, outcome, Duration::from_millis(50))
                        .await;
                    if admission == Admission::Probe {
                        probes.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
            tokio::time::sleep(step).await;
        }
        let now = start.elapsed();
        if now > FAIL_AT && all_open_at.is_none() && last_open.iter().all(|o| *o) {
            all_open_at = Some(now - FAIL_AT);
        }
        if now > RECOVER_AT && all_sync_at.is_none() && !last_open.iter().any(|o| *o) {
            all_sync_at = Some(now - RECOVER_AT);
        }
    }
    Report {
        n,
        throttled: store.throttled.load(Ordering::Relaxed),
        calls_per_instance_s: store.calls.load(Ordering::Relaxed) as f64
            / n as f64
            / END.as_secs_f64(),
        all_open_after: all_open_at,
        most_probes_at_once: most_probes.load(Ordering::Relaxed),
        all_sync_after: all_sync_at,
    }
}

/// Today's layout (one item per group) from 10 to 10,000 instances: the
/// reference. Up to 100 the item is far from its limit and the fleet acts
/// as one breaker (asserted); from about 500 it is throttled, instances
/// fall back to breakers of their own, and the fleet-wide behaviour goes
/// (printed, for BENCHMARKS.md: what a sharded layout must remove).
#[tokio::test(start_paused = true)]
async fn the_single_item_fleet_breaker_as_the_fleet_grows() {
    println!("| instances | throttled writes | store calls / instance / s | all async after | probes at once | all sync after |");
    println!("|---|---|---|---|---|---|");
    for n in [10, 100, 500, 1000, 10_000] {
        let r = simulate(n).await;
        println!(
            "| {} | {} | {:.2} | {:?} | {} | {:?} |",
            r.n,
            r.throttled,
            r.calls_per_instance_s,
            r.all_open_after,
            r.most_probes_at_once,
            r.all_sync_after
        );
        if n <= 100 {
            // Well inside the item's limit: the fleet acts as one breaker.
            assert_eq!(r.throttled, 0, "{r:?}");
            assert!(
                r.all_open_after.is_some() && r.all_sync_after.is_some(),
                "{r:?}"
            );
            assert_eq!(r.most_probes_at_once, 1, "one probe at a time: {r:?}");
        }
    }
}
