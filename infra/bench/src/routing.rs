//! Part 7: what routing costs. The same backend behind a gateway with one
//! route and behind one with 50 routes, the measured route last (the table
//! is searched in order, so this is the worst case); interleaved rounds,
//! p99 ratio (target <= 1.01).

use std::sync::Arc;

use failover_core::route::RouteTable;
use failover_core::Policy;

use crate::load::{backend, percentile, run_load, serve_router, LoadResult};
use crate::{build_with, ms, CONCURRENCY, REQUESTS, ROUNDS};

fn routes(backend: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "[[route]]\nname = \"r{i}\"\nmethod = \"POST\"\npath = \"/svc{i}/items/{{id}}\"\n\
                 backend = \"{backend}svc{i}/items/{{id}}\"\n\n"
            )
        })
        .collect()
}

pub async fn run() -> anyhow::Result<()> {
    let backend_url = backend(Some(std::time::Duration::ZERO)).await?;
    let policy = Policy::default();
    let mut urls = Vec::new();
    let mut dirs = Vec::new();
    for count in [1, 50] {
        let table = RouteTable::parse(&routes(&backend_url, count), "bench", &policy)?;
        let dir = tempfile::tempdir()?;
        let (app, _store) = build_with(policy.clone(), Arc::new(table), dir.path())?;
        let base = serve_router(app.router).await?;
        urls.push(format!("{base}/svc{}/items/42", count - 1));
        dirs.push(dir);
    }
    for url in &urls {
        run_load(url, CONCURRENCY, 200).await?;
    }
    let (mut one, mut fifty) = (LoadResult::default(), LoadResult::default());
    for _ in 0..ROUNDS {
        one.extend(run_load(&urls[0], CONCURRENCY, REQUESTS / ROUNDS).await?);
        fifty.extend(run_load(&urls[1], CONCURRENCY, REQUESTS / ROUNDS).await?);
    }
    anyhow::ensure!(
        one.statuses
            .iter()
            .chain(&fifty.statuses)
            .all(|s| *s == 200),
        "a routed request did not answer 200"
    );
    println!("## 7. Routing ({REQUESTS} requests, concurrency {CONCURRENCY}, instant backend)");
    println!("| routes | p50 ms | p99 ms | req/s |");
    println!("|---|---|---|---|");
    for (label, r) in [("1", &one), ("50 (measured route last)", &fifty)] {
        println!(
            "| {label} | {:.2} | {:.2} | {:.0} |",
            ms(percentile(&r.latencies, 0.50)),
            ms(percentile(&r.latencies, 0.99)),
            r.rate()
        );
    }
    println!(
        "ratio p99 {:.3} (target <= 1.01)\n",
        ms(percentile(&fifty.latencies, 0.99)) / ms(percentile(&one.latencies, 0.99))
    );
    Ok(())
}
