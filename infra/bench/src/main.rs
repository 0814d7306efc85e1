//! The benchmark: the gateway measured against its reference in one run.
//!
//! `cargo run --release -p failover-bench` prints three ratios:
//!
//! 1. sync overhead: p50/p99 latency through the local gateway vs straight
//!    to a loopback backend with a fixed 20 ms latency, same concurrency;
//! 2. failover speed: p99 time-to-202 vs the 300 ms deadline with a backend
//!    that never answers (breaker held closed so every request waits out the
//!    deadline), plus the breaker-open fast path;
//! 3. worker drain rate vs raw receive+ack rate of the same SQLite store;
//! 4. size and cold start of the Lambda binaries vs a minimal `lambda_http`
//!    function (it builds them first);
//! 5. a chaos run: the backend hangs for a while, then recovers;
//! 6. the breaker's bookkeeping per request vs a gate that only counts;
//! 7. routing: p99 with 50 routes vs with one, same backend;
//! 8. lanes after an outage: when the last critical ticket is done vs the
//!    last normal one, and bulk attempts outside its window.
//!
//! 9. ticket event streams: time from the terminal write to the client,
//!    vs the write alone; memory and idle CPU per open stream.
//!
//! 10. tracing: the sync path with spans exported over OTLP vs without.
//!
//! 11. the sync path vs nginx as a reverse proxy, under `wrk`.
//!
//! `BENCH_ONLY=1..11` runs one part. Only loopback addresses are used; every
//! loop is bounded in count.

mod chaos;
mod gate;
mod lambda;
mod lanes;
mod load;
mod proxy;
mod routing;
mod sse;
mod traced;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use failover_adapters::http_backend::HttpBackend;
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_adapters::webhook_sender::HttpWebhookSender;
use failover_core::callback::CallbackRules;
use failover_core::config::ForceMode;
use failover_core::engine::Submission;
use failover_core::ports::{Queue, SystemClock};
use failover_core::route::RouteTable;
use failover_core::Policy;
use failover_local::{assemble, App, Parts};
use load::{backend, percentile, run_load, serve_router, LoadResult};

pub(crate) const CONCURRENCY: usize = 16;
pub(crate) const REQUESTS: usize = 8000;
const OPEN_REQUESTS: usize = 2000;
pub(crate) const ROUNDS: usize = 8;
const DRAIN: usize = 2000;

pub(crate) fn build(
    policy: Policy,
    backend_url: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(App, SqliteStore)> {
    let routes = RouteTable::single(backend_url, Arc::new(policy.clone()))?;
    build_with(policy, Arc::new(routes), dir)
}

/// The local-mode app over these routes, its spans going to `tracer`.
pub(crate) fn build_traced(
    policy: Policy,
    backend_url: &str,
    dir: &std::path::Path,
    tracer: Arc<dyn failover_core::trace::Tracer>,
) -> anyhow::Result<(App, SqliteStore)> {
    let routes = RouteTable::single(backend_url, Arc::new(policy.clone()))?;
    assemble_with(policy, Arc::new(routes), dir, tracer)
}

/// The local-mode app over these routes.
pub(crate) fn build_with(
    policy: Policy,
    routes: Arc<RouteTable>,
    dir: &std::path::Path,
) -> anyhow::Result<(App, SqliteStore)> {
    assemble_with(
        policy,
        routes,
        dir,
        Arc::new(failover_core::trace::NoTracer),
    )
}

fn assemble_with(
    policy: Policy,
    routes: Arc<RouteTable>,
    dir: &std::path::Path,
    tracer: Arc<dyn failover_core::trace::Tracer>,
) -> anyhow::Result<(App, SqliteStore)> {
    let clock = Arc::new(SystemClock);
    let store = SqliteStore::open(
        &dir.join("bench.sqlite3"),
        clock.clone(),
        SqliteOptions::default(),
    )?;
    let s = Arc::new(store.clone());
    let parts = Parts {
        tickets: s.clone(),
        idempotency: s.clone(),
        queue: s.clone(),
        topic: s,
        backend: Arc::new(HttpBackend::new(policy.max_answer_bytes).map_err(anyhow::Error::msg)?),
        routes,
        webhooks: Arc::new(
            HttpWebhookSender::new(CallbackRules::default()).map_err(anyhow::Error::msg)?,
        ),
        clock,
        drills: None,
        board: None,
        tracer,
    };
    Ok((assemble(Arc::new(policy), parts), store))
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn sync_overhead() -> anyhow::Result<()> {
    let backend_url = backend(Some(Duration::from_millis(20))).await?;
    let dir = tempfile::tempdir()?;
    let (app, _store) = build(Policy::default(), &backend_url, dir.path())?;
    let gateway = serve_router(app.router).await?;
    let gateway_url = format!("{gateway}/requests");
    // Warm both paths (connections, SQLite pages), then measure.
    run_load(&backend_url, CONCURRENCY, 200).await?;
    run_load(&gateway_url, CONCURRENCY, 200).await?;
    // Interleaved rounds, so that a noisy moment of the machine hits both
    // paths alike instead of only the one that happened to run then.
    let mut direct = LoadResult::default();
    let mut through = LoadResult::default();
    for _ in 0..ROUNDS {
        direct.extend(run_load(&backend_url, CONCURRENCY, REQUESTS / ROUNDS).await?);
        through.extend(run_load(&gateway_url, CONCURRENCY, REQUESTS / ROUNDS).await?);
    }
    anyhow::ensure!(
        through.statuses.iter().all(|s| *s == 200),
        "gateway answered non-200"
    );
    let (d50, d99) = (
        percentile(&direct.latencies, 0.50),
        percentile(&direct.latencies, 0.99),
    );
    let (g50, g99) = (
        percentile(&through.latencies, 0.50),
        percentile(&through.latencies, 0.99),
    );
    println!(
        "## 1. Sync path overhead ({REQUESTS} requests, concurrency {CONCURRENCY}, backend 20 ms)"
    );
    println!("| path | p50 ms | p99 ms | req/s |");
    println!("|---|---|---|---|");
    println!(
        "| direct to backend | {:.2} | {:.2} | {:.0} |",
        ms(d50),
        ms(d99),
        direct.rate()
    );
    println!(
        "| through gateway | {:.2} | {:.2} | {:.0} |",
        ms(g50),
        ms(g99),
        through.rate()
    );
    println!(
        "ratio p50 {:.3}, p99 {:.3} (target p99 <= 1.05)\n",
        ms(g50) / ms(d50),
        ms(g99) / ms(d99)
    );
    Ok(())
}

async fn time_to_202() -> anyhow::Result<()> {
    let hang = backend(None).await?;
    let deadline = Duration::from_millis(300);
    let dir = tempfile::tempdir()?;
    // FORCE_MODE=sync keeps the breaker closed: every request waits out the
    // deadline, which is what this measures.
    let policy = Policy {
        sync_deadline: deadline,
        force_mode: ForceMode::Sync,
        ..Policy::default()
    };
    let (app, _store) = build(policy, &hang, dir.path())?;
    let gateway = serve_router(app.router).await?;
    let n = 400;
    let r = run_load(&format!("{gateway}/requests"), CONCURRENCY, n).await?;
    anyhow::ensure!(r.statuses.iter().all(|s| *s == 202), "expected only 202s");
    let (p50, p99) = (
        percentile(&r.latencies, 0.50),
        percentile(&r.latencies, 0.99),
    );

    // The breaker-open fast path: same backend, default policy, breaker open.
    let dir2 = tempfile::tempdir()?;
    let (open_app, _s) = build(
        Policy {
            sync_deadline: deadline,
            ..Policy::default()
        },
        &hang,
        dir2.path(),
    )?;
    let open_gw = serve_router(open_app.router).await?;
    run_load(&format!("{open_gw}/requests"), CONCURRENCY, 32).await?; // trips the breaker
    let o = run_load(&format!("{open_gw}/requests"), CONCURRENCY, OPEN_REQUESTS).await?;
    anyhow::ensure!(o.statuses.iter().all(|s| *s == 202), "expected only 202s");
    let (o50, o99) = (
        percentile(&o.latencies, 0.50),
        percentile(&o.latencies, 0.99),
    );

    println!(
        "## 2. Time to 202 (backend never answers, deadline 300 ms, concurrency {CONCURRENCY})"
    );
    println!("| path | requests | p50 ms | p99 ms | req/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| deadline path (breaker held closed) | {n} | {:.1} | {:.1} | {:.0} |",
        ms(p50),
        ms(p99),
        r.rate()
    );
    println!(
        "| breaker open (no backend wait) | {OPEN_REQUESTS} | {:.2} | {:.2} | {:.0} |",
        ms(o50),
        ms(o99),
        o.rate()
    );
    println!(
        "p99 time-to-202 = deadline + {:.1} ms (target <= deadline + 10 ms); ratio {:.3}\n",
        ms(p99) - ms(deadline),
        ms(p99) / ms(deadline)
    );
    Ok(())
}

/// Seconds the worker takes to finish `n` captured requests.
async fn drain_secs(policy: Policy, backend_url: &str, n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let (app, store) = build(policy, backend_url, dir.path())?;
    for i in 0..n {
        let sub = Submission {
            body: format!(r#"{{"n":{i}}}"#).into_bytes(),
            content_type: "application/json".into(),
            request_id: format!("bench-{i}"),
            respond_async: true,
            ..Submission::default()
        };
        app.engine.submit(sub).await.context("capture")?;
    }
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.worker.clone().run(CONCURRENCY, async move {
        let _ = stopped.await;
    }));
    let limit = Instant::now() + Duration::from_secs(300);
    loop {
        let s = store.stats().await?;
        if s.visible + s.in_flight == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < limit, "drain did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = run.await;
    Ok(secs)
}

async fn drain() -> anyhow::Result<()> {
    let fast = backend(Some(Duration::ZERO)).await?;
    let unbounded = Policy {
        drain_max_rps: 0,
        ..Policy::default()
    };
    let worker_secs = drain_secs(unbounded, &fast, DRAIN).await?;
    let bound = 200;
    let bounded = Policy {
        drain_max_rps: bound,
        ..Policy::default()
    };
    let bounded_secs = drain_secs(bounded, &fast, DRAIN / 2).await?;

    // Raw: the same store kind, plain receive + ack, no processing.
    let dir2 = tempfile::tempdir()?;
    let raw = SqliteStore::open(
        &dir2.path().join("raw.sqlite3"),
        Arc::new(SystemClock),
        SqliteOptions::default(),
    )?;
    for i in 0..DRAIN {
        let normal = failover_core::ports::Priority::normal(0);
        raw.send(&format!("m{i}"), normal, Duration::ZERO).await?;
    }
    let started = Instant::now();
    let mut done = 0;
    while done < DRAIN {
        let batch = raw
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await?;
        anyhow::ensure!(!batch.is_empty(), "raw queue ran dry at {done}");
        for d in batch {
            raw.ack(&d).await?;
            done += 1;
        }
    }
    let raw_secs = started.elapsed().as_secs_f64();
    let (w, r) = (DRAIN as f64 / worker_secs, DRAIN as f64 / raw_secs);
    println!("## 3. Worker drain rate ({DRAIN} messages, worker concurrency {CONCURRENCY}, backend 0 ms)");
    println!("| what | messages/s |");
    println!("|---|---|");
    println!("| worker: claim, call, succeed, publish, ack (DRAIN_MAX_RPS=0) | {w:.0} |");
    println!("| raw receive + ack, same store | {r:.0} |");
    let b = (DRAIN / 2) as f64 / bounded_secs;
    println!(
        "| worker with DRAIN_MAX_RPS={bound}, {} messages | {b:.0} |",
        DRAIN / 2
    );
    println!(
        "ratio worker/raw {:.3}; bounded worker/bound {:.3} (target <= 1)\n",
        w / r,
        b / f64::from(bound)
    );
    Ok(())
}

/// The allocator the gateway's binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!(
        "failover-bench: {} cores, {}\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        std::env::consts::ARCH
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "1" {
        sync_overhead().await?;
    }
    if only.is_empty() || only == "2" {
        time_to_202().await?;
    }
    if only.is_empty() || only == "3" {
        drain().await?;
    }
    if only.is_empty() || only == "5" {
        chaos::run().await?;
    }
    if only.is_empty() || only == "6" {
        gate::run().await?;
    }
    if only.is_empty() || only == "7" {
        routing::run().await?;
    }
    if only.is_empty() || only == "8" {
        lanes::run().await?;
    }
    if only.is_empty() || only == "9" {
        sse::run().await?;
    }
    if only.is_empty() || only == "10" {
        traced::run().await?;
    }
    if only.is_empty() || only == "11" {
        proxy::run().await?;
    }
    if only.is_empty() || only == "4" {
        lambda::run().await?;
    }
    Ok(())
}
