//! Issue 17: the fleet breaker simulated from 10 to 10,000 instances, over
//! a health store that enforces DynamoDB's limits, driving the real gate
//! code on paused time.
//!
//! Each of N instances (a real `Breaker::shared`) sends one request per
//! second, staggered; its backend call takes 50 ms. The backend fails from
//! 20 s to 50 s. The store is a table of four partitions (a new on-demand
//! table's) into which the health items hash; each partition takes 1,000
//! write and 3,000 read units per second, and past that answers as
//! DynamoDB does (a throttling error, nothing applied). Every call costs
//! what the DynamoDB adapter's call costs, at the adapter's declared
//! worst-case item sizes (which the conformance suite checks against
//! DynamoDB Local): a report is an update of the record (two when its slot
//! must be reset for a new second), a record read is strongly consistent,
//! a view read eventually consistent. Store calls answer at once.
//!
//! Two layouts run: today's sampled record with its view copies, and the
//! single item every instance reports to (the layout before issue 17) as
//! the reference.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failover_adapters::aws::{budget, record_bytes, view_bytes, VIEW_COPIES};
use failover_core::breaker::rules::{BreakerState, Bucket, Mode, Rules};
use failover_core::breaker::store::{Budget, HealthRecord, View};
use failover_core::breaker::{
    Admission, Breaker, CallOutcome, HealthGate, HealthStore, InProcessHealth,
};
use failover_core::ports::{StoreError, TokioClock};
use failover_core::Policy;
use tokio::time::Instant;

const PARTITIONS: u64 = 4;
const PARTITION_WCU: f64 = 1000.0;
const PARTITION_RCU: f64 = 3000.0;
/// Throttling before this counts as the fleet's start (all N instances
/// arriving in the same second), not its steady state.
const START: Duration = Duration::from_secs(10);
const FAIL_AT: Duration = Duration::from_secs(20);
const RECOVER_AT: Duration = Duration::from_secs(50);
/// The store answers nothing (every call fails) for these five seconds.
const STORE_DOWN: std::ops::Range<Duration> = Duration::from_secs(70)..Duration::from_secs(75);
const END: Duration = Duration::from_secs(90);
/// When the load estimate is compared with the truth (healthy, steady).
const LOAD_AT: Duration = Duration::from_secs(15);
const CALL: Duration = Duration::from_millis(50);
/// On-demand prices in us-east-1, dollars per million request units.
const WRITE_PRICE: f64 = 0.625;
const READ_PRICE: f64 = 0.125;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Layout {
    /// One item every instance reports to and reads (the reference).
    SingleItem,
    /// The record, sampled reports, and view copies.
    Sampled,
}

#[derive(Default)]
struct Spend {
    calls: usize,
    throttled_start: usize,
    throttled_steady: usize,
    throttled_after_outage: usize,
    /// Units spent per second of the run: (write, read).
    per_second: HashMap<u64, (f64, f64)>,
    /// Per (partition, second): (write, read).
    partitions: HashMap<(u64, u64), (f64, f64)>,
}

/// The table the fleet shares.
struct Table {
    layout: Layout,
    window_s: i64,
    record: InProcessHealth,
    copies: Vec<InProcessHealth>,
    /// The second each record slot last held (a new one costs a reset).
    slots: Mutex<HashMap<i64, i64>>,
    spend: Mutex<Spend>,
    start: Instant,
    /// When the breaker closed after the recovery.
    closed_at: Mutex<Option<Duration>>,
}

fn partition(key: &str) -> u64 {
    // FNV-1a: a fixed, well-spread hash.
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h % PARTITIONS
}

impl Table {
    fn new(layout: Layout, window_s: i64) -> Self {
        Self {
            layout,
            window_s,
            record: InProcessHealth::default(),
            copies: (0..VIEW_COPIES)
                .map(|_| InProcessHealth::default())
                .collect(),
            slots: Mutex::new(HashMap::new()),
            spend: Mutex::new(Spend::default()),
            start: Instant::now(),
            closed_at: Mutex::new(None),
        }
    }

    /// Spends `write` and `read` units on the partition of `key`, or
    /// refuses the call as DynamoDB does.
    fn charge(&self, key: &str, write: f64, read: f64) -> Result<(), StoreError> {
        let elapsed = self.start.elapsed();
        let second = elapsed.as_secs();
        let mut spend = self.spend.lock().expect("spend");
        spend.calls += 1;
        if STORE_DOWN.contains(&elapsed) {
            return Err(StoreError::Unavailable("ServiceUnavailable".into()));
        }
        let used = spend
            .partitions
            .entry((partition(key), second))
            .or_default();
        if used.0 + write > PARTITION_WCU || used.1 + read > PARTITION_RCU {
            match elapsed {
                e if e < START => spend.throttled_start += 1,
                e if e < STORE_DOWN.start => spend.throttled_steady += 1,
                _ => spend.throttled_after_outage += 1,
            }
            return Err(StoreError::Unavailable(
                "ProvisionedThroughputExceededException: The level of configured provisioned \
                 throughput for the table was exceeded"
                    .into(),
            ));
        }
        used.0 += write;
        used.1 += read;
        let total = spend.per_second.entry(second).or_default();
        total.0 += write;
        total.1 += read;
        Ok(())
    }

    fn record_write_units(&self) -> f64 {
        record_bytes(self.window_s).div_ceil(1024) as f64
    }
}

/// One instance's handle on the table (the view copy it reads).
struct Instance {
    table: Arc<Table>,
    copy: usize,
}

const RECORD_KEY: &str = "H#breaker";

fn copy_key(copy: usize) -> String {
    format!("H#view#{copy}")
}

#[async_trait]
impl HealthStore for Instance {
    async fn exchange(&self, counts: &[Bucket], window_s: i64) -> Result<HealthRecord, StoreError> {
        let t = &self.table;
        if counts.is_empty() {
            let units = record_bytes(window_s).div_ceil(4096) as f64;
            t.charge(RECORD_KEY, 0.0, units)?;
        } else {
            // An update per second reported, plus a failed one when its slot
            // still holds an older second.
            let resets = {
                let slots = t.slots.lock().expect("slots");
                counts
                    .iter()
                    .filter(|c| slots.get(&c.second.rem_euclid(window_s)) != Some(&c.second))
                    .count()
            };
            let writes = (counts.len() + resets) as f64;
            t.charge(RECORD_KEY, writes * t.record_write_units(), 0.0)?;
            let mut slots = t.slots.lock().expect("slots");
            for c in counts {
                let held = slots.entry(c.second.rem_euclid(window_s)).or_default();
                *held = (*held).max(c.second);
            }
        }
        t.record.exchange(counts, window_s).await
    }

    async fn replace(&self, next: &BreakerState) -> Result<(), StoreError> {
        let t = &self.table;
        t.charge(RECORD_KEY, t.record_write_units(), 0.0)?;
        t.record.replace(next).await?;
        if next.mode == Mode::Closed && t.start.elapsed() > RECOVER_AT {
            t.closed_at
                .lock()
                .expect("closed")
                .get_or_insert(t.start.elapsed());
        }
        Ok(())
    }

    async fn read_view(&self) -> Result<Option<View>, StoreError> {
        let t = &self.table;
        if t.layout == Layout::SingleItem {
            return Ok(None); // no copies in that layout
        }
        let units = 0.5 * view_bytes(t.window_s).div_ceil(4096) as f64;
        t.charge(&copy_key(self.copy), 0.0, units)?;
        t.copies[self.copy].read_view().await
    }

    async fn publish_view(&self, view: &View) -> Result<(), StoreError> {
        let t = &self.table;
        let units = view_bytes(t.window_s).div_ceil(1024) as f64;
        let mut first_error = Ok(());
        for (k, copy) in t.copies.iter().enumerate() {
            match t.charge(&copy_key(k), units, 0.0) {
                Ok(()) => copy.publish_view(view).await?,
                Err(e) => first_error = first_error.and(Err(e)),
            }
        }
        first_error
    }

    fn budget(&self, window_s: i64) -> Budget {
        match self.table.layout {
            Layout::SingleItem => Budget::UNLIMITED,
            Layout::Sampled => budget(window_s),
        }
    }
}

/// What one simulation measured.
#[derive(Debug)]
struct Report {
    n: usize,
    layout: Layout,
    throttled_start: usize,
    throttled_steady: usize,
    /// After the store's five-second outage.
    throttled_after_outage: usize,
    calls_per_instance_s: f64,
    /// Units per second while healthy and steady (10 s to 20 s).
    write_units_s: f64,
    read_units_s: f64,
    /// From the failure until the window's true totals cross the threshold.
    crossed_after: Duration,
    /// From the crossing until every instance has answered `circuit_open`.
    all_open_after: Option<Duration>,
    most_probes_at_once: usize,
    /// From the recovery until the breaker closes (the open period and
    /// the healthy probes).
    closed_after: Option<Duration>,
    /// From the breaker closing until every instance has answered sync.
    all_sync_after: Option<Duration>,
    /// The fleet load estimate against the truth at 15 s: mean and worst
    /// relative error over a sample of instances.
    load_error: (f64, f64),
}

impl Report {
    fn dollars_per_hour(&self) -> f64 {
        (self.write_units_s * WRITE_PRICE + self.read_units_s * READ_PRICE) * 3600.0 / 1e6
    }
}

/// The fleet's real outcomes per second, and when their window first
/// crossed the threshold after the failure.
struct Truth {
    rules: Rules,
    seconds: Mutex<HashMap<i64, Bucket>>,
    crossed_at: Mutex<Option<Duration>>,
}

impl Truth {
    fn record(&self, now_ms: i64, failed: bool, at: Duration) {
        let mut seconds = self.seconds.lock().expect("truth");
        let b = seconds.entry(now_ms.div_euclid(1000)).or_default();
        b.second = now_ms.div_euclid(1000);
        b.add(&Bucket {
            calls: 1,
            errors: u32::from(failed),
            busy_ms: CALL.as_millis() as u64,
            ..Bucket::default()
        });
        let mut crossed = self.crossed_at.lock().expect("crossed");
        if crossed.is_none() && at >= FAIL_AT {
            let initial = BreakerState::initial(Duration::from_secs(5));
            if self
                .rules
                .tripped(&self.rules.totals(&initial, seconds.values(), now_ms))
            {
                *crossed = Some(at);
            }
        }
    }

    fn load(&self, now_ms: i64) -> f64 {
        self.rules
            .load(self.seconds.lock().expect("truth").values(), now_ms)
    }
}

async fn simulate(n: usize, layout: Layout) -> Report {
    let policy = Policy {
        breaker_min_calls: 20,
        health_cache: Duration::from_millis(1000),
        // Shedding is not what this measures.
        sync_max_inflight: 1_000_000,
        ..Policy::default()
    };
    let start_ms = 1_800_000_000_000;
    let clock = Arc::new(TokioClock::starting_at(start_ms));
    let table = Arc::new(Table::new(layout, policy.breaker_window.as_secs() as i64));
    let gates: Vec<Arc<Breaker>> = (0..n)
        .map(|i| {
            let store = Arc::new(Instance {
                table: table.clone(),
                copy: i % VIEW_COPIES,
            });
            let gate = Breaker::shared(&policy, store, clock.clone(), policy.health_cache);
            Arc::new(gate.seeded(i as u64))
        })
        .collect();
    let truth = Arc::new(Truth {
        rules: Rules::new(&policy),
        seconds: Mutex::new(HashMap::new()),
        crossed_at: Mutex::new(None),
    });
    let start = Instant::now();
    let probes = Arc::new(AtomicUsize::new(0));
    let most_probes = Arc::new(AtomicUsize::new(0));
    let mut first_open: Vec<Option<Duration>> = vec![None; n];
    let mut first_sync: Vec<Option<Duration>> = vec![None; n];
    let mut load_errors = Vec::new();
    let sample_every = (n / 50).max(1);
    let step = Duration::from_secs(1) / n as u32;
    while start.elapsed() < END {
        let sweep_at = start.elapsed();
        for (i, gate) in gates.iter().enumerate() {
            let now = start.elapsed();
            let admission = gate.admit().await;
            let crossed = *truth.crossed_at.lock().expect("crossed");
            let closed = *table.closed_at.lock().expect("closed");
            match admission {
                Admission::Open { .. } if crossed.is_some_and(|c| now >= c) => {
                    first_open[i].get_or_insert(now);
                }
                Admission::Sync if closed.is_some_and(|c| now >= c) => {
                    first_sync[i].get_or_insert(now);
                }
                _ => {}
            }
            let load_sweep = (LOAD_AT..LOAD_AT + Duration::from_secs(1)).contains(&sweep_at);
            if load_sweep && i % sample_every == 0 {
                let estimate = gate.snapshot().await.fleet_inflight.unwrap_or(0.0);
                let real = truth.load(start_ms + now.as_millis() as i64);
                load_errors.push((estimate / real - 1.0).abs());
            }
            if let Admission::Sync | Admission::Probe = admission {
                let failing = now >= FAIL_AT && now < RECOVER_AT;
                let (gate, truth) = (gate.clone(), truth.clone());
                let (probes, most) = (probes.clone(), most_probes.clone());
                tokio::spawn(async move {
                    if admission == Admission::Probe {
                        let now = probes.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                    }
                    tokio::time::sleep(CALL).await;
                    let outcome = match failing {
                        true => CallOutcome::Error,
                        false => CallOutcome::Answered,
                    };
                    let at = start.elapsed();
                    truth.record(start_ms + at.as_millis() as i64, failing, at);
                    gate.record(admission, outcome, CALL).await;
                    if admission == Admission::Probe {
                        probes.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
            // Tokio's timer counts whole milliseconds: past 1,000 instances
            // several share one.
            let due = start + sweep_at + step * (i as u32 + 1);
            if Instant::now() + Duration::from_millis(1) <= due {
                tokio::time::sleep_until(due).await;
            }
        }
        tokio::time::sleep_until(start + sweep_at + Duration::from_secs(1)).await;
    }
    let spend = table.spend.lock().expect("spend");
    let steady = START.as_secs()..FAIL_AT.as_secs();
    let seconds = (steady.end - steady.start) as f64;
    let (w, r) = steady
        .filter_map(|s| spend.per_second.get(&s))
        .fold((0.0, 0.0), |(w, r), (dw, dr)| (w + dw, r + dr));
    let crossed = truth.crossed_at.lock().expect("crossed").expect("crossed");
    let closed = *table.closed_at.lock().expect("closed");
    let latest = |times: &[Option<Duration>]| -> Option<Duration> {
        times
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    };
    Report {
        n,
        layout,
        throttled_start: spend.throttled_start,
        throttled_steady: spend.throttled_steady,
        throttled_after_outage: spend.throttled_after_outage,
        calls_per_instance_s: spend.calls as f64 / n as f64 / END.as_secs_f64(),
        write_units_s: w / seconds,
        read_units_s: r / seconds,
        crossed_after: crossed - FAIL_AT,
        all_open_after: latest(&first_open).map(|t| t - crossed),
        closed_after: closed.map(|c| c - RECOVER_AT),
        most_probes_at_once: most_probes.load(Ordering::Relaxed),
        all_sync_after: latest(&first_sync).zip(closed).map(|(t, c)| t - c),
        load_error: (
            load_errors.iter().sum::<f64>() / load_errors.len().max(1) as f64,
            load_errors.iter().copied().fold(0.0, f64::max),
        ),
    }
}

fn print_header() {
    println!(
        "| layout | instances | throttled (start / steady / after a store outage) | store calls / instance / s \
         | write units / s | read units / s | $ / hour | threshold crossed after failure \
         | all async after crossing | probes at once | closed after recovery \
         | all sync after closing | load estimate error (mean / worst) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

fn print(r: &Report) {
    let ms = |d: Option<Duration>| d.map_or("never".into(), |d| format!("{} ms", d.as_millis()));
    println!(
        "| {:?} | {} | {} / {} / {} | {:.2} | {:.0} | {:.0} | {:.3} | {} | {} | {} | {} | {} | {:.1}% / {:.1}% |",
        r.layout,
        r.n,
        r.throttled_start,
        r.throttled_steady,
        r.throttled_after_outage,
        r.calls_per_instance_s,
        r.write_units_s,
        r.read_units_s,
        r.dollars_per_hour(),
        ms(Some(r.crossed_after)),
        ms(r.all_open_after),
        r.most_probes_at_once,
        ms(r.closed_after),
        ms(r.all_sync_after),
        r.load_error.0 * 100.0,
        r.load_error.1 * 100.0,
    );
}

/// The targets, at every size up to 10,000 instances: no throttled
/// call in steady state, every instance async within 3 s of the crossing,
/// one probe at a time fleet-wide, all back to sync within 3 s of closing,
/// and a load estimate within 25% of the truth.
#[tokio::test(start_paused = true)]
async fn the_sampled_fleet_breaker_holds_from_10_to_10_000_instances() {
    print_header();
    for n in [10, 100, 1000, 10_000] {
        let r = simulate(n, Layout::Sampled).await;
        print(&r);
        assert_eq!(r.throttled_steady, 0, "{r:?}");
        let three = Some(Duration::from_secs(3));
        assert!(
            r.all_open_after <= three && r.all_open_after.is_some(),
            "{r:?}"
        );
        assert_eq!(r.most_probes_at_once, 1, "one probe at a time: {r:?}");
        assert!(
            r.all_sync_after <= three && r.all_sync_after.is_some(),
            "{r:?}"
        );
        assert!(r.load_error.0 < 0.25, "{r:?}");
    }
}

/// The layout before issue 17, one item every instance reports to, as the
/// reference: fine up to 100 instances (asserted), throttled from a few
/// hundred, and then the fleet-wide behaviour goes (printed, for
/// BENCHMARKS.md).
#[tokio::test(start_paused = true)]
async fn the_single_item_reference_breaks_down_past_a_few_hundred_instances() {
    print_header();
    for n in [10, 100, 500, 1000, 10_000] {
        let r = simulate(n, Layout::SingleItem).await;
        print(&r);
        if n <= 100 {
            assert_eq!(r.throttled_start + r.throttled_steady, 0, "{r:?}");
            assert_eq!(r.most_probes_at_once, 1, "{r:?}");
        }
        if n == 500 {
            assert!(r.throttled_steady > 0, "the reference is throttled: {r:?}");
        }
    }
}
