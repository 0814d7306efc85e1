//! Load generation and the reference backend, all on loopback.

use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;

/// A backend on 127.0.0.1: answers 200 after `latency`, or never (`None`).
pub async fn backend(latency: Option<Duration>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let app = Router::new().fallback(post(move || async move {
        match latency {
            Some(d) => {
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                (axum::http::StatusCode::OK, r#"{"ok":true}"#)
            }
            None => {
                // Never answers within any deadline used here.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                (axum::http::StatusCode::GATEWAY_TIMEOUT, "{}")
            }
        }
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Serves a router on 127.0.0.1 (API only: no worker).
pub async fn serve_router(router: Router) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(failover_local::nodelay(listener), router).await;
    });
    Ok(base)
}

#[derive(Default)]
pub struct LoadResult {
    pub latencies: Vec<Duration>,
    pub statuses: Vec<u16>,
    pub wall: Duration,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    /// Adds another run's samples (kept sorted).
    pub fn extend(&mut self, other: LoadResult) {
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self.statuses.extend(other.statuses);
        self.wall += other.wall;
    }
}

/// `total` POSTs of a small JSON body from `concurrency` closed-loop clients.
/// One request of load client `c`, its `i`th: a small distinct JSON body.
pub async fn post_request(
    client: &reqwest::Client,
    url: &str,
    c: usize,
    i: u64,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"client":{c},"i":{i}}}"#))
        .send()
        .await
}

pub async fn run_load(url: &str, concurrency: usize, total: usize) -> anyhow::Result<LoadResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let n = total / concurrency + usize::from(c < total % concurrency);
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let t = Instant::now();
                let resp = post_request(&client, &url, c, i as u64).await?;
                let status = resp.status().as_u16();
                resp.bytes().await?;
                out.push((t.elapsed(), status));
            }
            anyhow::Ok(out)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut statuses = Vec::with_capacity(total);
    for t in tasks {
        for (l, s) in t.await?? {
            latencies.push(l);
            statuses.push(s);
        }
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    Ok(LoadResult {
        latencies,
        statuses,
        wall,
    })
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
