//! Part 6: what the breaker's bookkeeping costs per request.
//!
//! Every sync request calls `admit` before and `record` after the backend
//! call. This measures that pair on its own, against a gate that does the
//! least a gate can (one atomic add), single-task and with 16 tasks
//! contending, for the in-process breaker (local mode) and the fleet gate
//! between its store calls (AWS mode; its one store call per
//! `HEALTH_CACHE_MS` is a DynamoDB round trip, not measured here).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use failover_core::breaker::{
    Admission, Breaker, BreakerSnapshot, CallOutcome, HealthGate, InProcessHealth,
};
use failover_core::ports::SystemClock;
use failover_core::Policy;

const OPS: u64 = 200_000;
const TASKS: u64 = 16;

type MakeGate = fn(&Policy) -> Arc<dyn HealthGate>;

/// The reference: a gate that only counts.
#[derive(Default)]
struct Counting(AtomicU64);

#[async_trait]
impl HealthGate for Counting {
    async fn admit(&self) -> Admission {
        self.0.fetch_add(1, Ordering::Relaxed);
        Admission::Sync
    }
    async fn admit_without_probe(&self) -> Admission {
        self.admit().await
    }
    async fn record(&self, _: Admission, _: CallOutcome, _: Duration) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    async fn release(&self, _: Admission) {}
    async fn snapshot(&self) -> BreakerSnapshot {
        unreachable!("not measured")
    }
    async fn closed_for(&self) -> Option<Duration> {
        None
    }
    async fn reset(&self) -> Result<(), failover_core::ports::StoreError> {
        Ok(())
    }
}

/// Nanoseconds per admit+record pair, over `tasks` concurrent tasks.
async fn per_pair(gate: Arc<dyn HealthGate>, tasks: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                for i in 0..OPS / tasks {
                    let a = gate.admit().await;
                    // 1 in 100 is an error: the breaker stays closed.
                    let outcome = match i % 100 {
                        0 => CallOutcome::Error,
                        _ => CallOutcome::Answered,
                    };
                    gate.record(a, outcome, Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await?;
    }
    Ok(started.elapsed().as_nanos() as f64 / OPS as f64)
}

pub async fn run() -> anyhow::Result<()> {
    let policy = Policy::default();
    println!("## 6. Breaker bookkeeping per request (admit + record, {OPS} pairs)");
    println!("| gate | 1 task ns | {TASKS} tasks ns | vs reference (1 task) |");
    println!("|---|---|---|---|");
    let reference = per_pair(Arc::new(Counting::default()), 1).await?;
    let rows: [(&str, MakeGate); 3] = [
        ("reference: one atomic add", |_| {
            Arc::new(Counting::default())
        }),
        ("in-process breaker (local mode)", |p| {
            Arc::new(Breaker::new(p))
        }),
        ("fleet gate between store calls (AWS mode)", |p| {
            let store = Arc::new(InProcessHealth::default());
            Arc::new(Breaker::shared(
                p,
                store,
                Arc::new(SystemClock),
                p.health_cache,
            ))
        }),
    ];
    let mut worst: f64 = 0.0;
    for (name, make) in rows {
        let one = per_pair(make(&policy), 1).await?;
        let many = per_pair(make(&policy), TASKS).await?;
        worst = worst.max(one).max(many);
        println!(
            "| {name} | {one:.0} | {many:.0} | {:.1}x |",
            one / reference
        );
    }
    println!(
        "worst case {:.2} us per request = {:.4}% of a 20 ms backend call\n",
        worst / 1000.0,
        worst / 20e6 * 100.0
    );
    Ok(())
}
