//! Part 10: what tracing costs the sync path.
//!
//! Two gateways on one backend (20 ms), identical but for the tracer: one
//! exports every request's spans over OTLP/HTTP to a receiver on loopback
//! (the test suite's, which decodes every span), the other has none. The
//! same interleaved load goes through both; the ratio of their p99 is the
//! cost of tracing (target <= 1.03). The receiver's count shows that the
//! exporter kept up (no span dropped).

use std::collections::HashMap;
use std::time::Duration;

use failover_core::Policy;
use failover_tests::otlp::OtlpReceiver;

use crate::load::{backend, percentile, run_load, serve_router, LoadResult};
use crate::{build_traced, ms, CONCURRENCY, REQUESTS, ROUNDS};

pub async fn run() -> anyhow::Result<()> {
    let backend_url = backend(Some(Duration::from_millis(20))).await?;
    let otlp = OtlpReceiver::start().await;
    let vars = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone())]);
    let on =
        failover_adapters::otlp::tracer(&|k| vars.get(k).cloned()).map_err(anyhow::Error::msg)?;
    let off = std::sync::Arc::new(failover_core::trace::NoTracer);
    let (dir_on, dir_off) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (app_on, _s1) = build_traced(Policy::default(), &backend_url, dir_on.path(), on.clone())?;
    let (app_off, _s2) = build_traced(Policy::default(), &backend_url, dir_off.path(), off)?;
    let url_on = format!("{}/requests", serve_router(app_on.router).await?);
    let url_off = format!("{}/requests", serve_router(app_off.router).await?);
    run_load(&url_on, CONCURRENCY, 200).await?;
    run_load(&url_off, CONCURRENCY, 200).await?;
    let (mut traced, mut plain) = (LoadResult::default(), LoadResult::default());
    for _ in 0..ROUNDS {
        plain.extend(run_load(&url_off, CONCURRENCY, REQUESTS / ROUNDS).await?);
        traced.extend(run_load(&url_on, CONCURRENCY, REQUESTS / ROUNDS).await?);
    }
    on.flush().await;
    anyhow::ensure!(
        traced
            .statuses
            .iter()
            .chain(&plain.statuses)
            .all(|s| *s == 200),
        "a gateway answered non-200"
    );
    let spans = otlp.spans().len();
    let row = |name: &str, r: &LoadResult| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} |",
            ms(percentile(&r.latencies, 0.50)),
            ms(percentile(&r.latencies, 0.99)),
            r.rate()
        )
    };
    println!("## 10. Tracing on the sync path ({REQUESTS} requests each, concurrency {CONCURRENCY}, backend 20 ms)");
    println!("| gateway | p50 ms | p99 ms | req/s |");
    println!("|---|---|---|---|");
    row("no tracer (reference)", &plain);
    row("spans exported over OTLP/HTTP", &traced);
    println!(
        "ratio p50 {:.3}, p99 {:.3} (target p99 <= 1.03)",
        ms(percentile(&traced.latencies, 0.50)) / ms(percentile(&plain.latencies, 0.50)),
        ms(percentile(&traced.latencies, 0.99)) / ms(percentile(&plain.latencies, 0.99))
    );
    println!(
        "spans received: {spans} for {} requests ({} export requests)\n",
        REQUESTS + 200,
        otlp.posts()
    );
    Ok(())
}
