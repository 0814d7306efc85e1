//! Part 9: ticket event streams (SSE) in local mode.
//!
//! Latency: the time from the start of a ticket's terminal write until
//! its event reaches a connected client, against the write alone (the
//! reference: what any reader of the store waits for). Two writers: the
//! process's own store (the worker's path: the write wakes the stream),
//! and the same file written around it (the operator's tool, another
//! process: the stream finds it on its next read, at most a second later).
//!
//! Memory: resident memory of the process before and after opening idle
//! streams, the clients holding bare sockets (a few hundred bytes each),
//! so the growth is the server's per stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_core::lane::Lanes;
use failover_core::ports::TicketStore;
use failover_core::ticket::{Status, TicketId};
use failover_core::{Clock, Policy};
use failover_tests::sse::SseReader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::{percentile, serve_router};
use crate::ms;

const LATENCY_TICKETS: usize = 300;
const POLLED_TICKETS: usize = 30;
const IDLE_STREAMS: usize = 5000;

/// CPU time this process has used (user + system), in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn accepted(client: &reqwest::Client, base: &str) -> anyhow::Result<TicketId> {
    let resp = client
        .post(format!("{base}/requests"))
        .header("content-type", "application/json")
        .header("prefer", "respond-async")
        .body(r#"{"amount":1}"#)
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 202, "expected 202, got {}", resp.status());
    let body: serde_json::Value = resp.json().await?;
    Ok(body["ticket_id"].as_str().unwrap_or_default().parse()?)
}

/// (write, write + delivery) for each ticket, cancelled through `store`.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    store: &dyn TicketStore,
    n: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut writes, mut delivered) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let id = accepted(client, base).await?;
        let resp = client
            .get(format!("{base}/tickets/{id}/events"))
            .send()
            .await?;
        let mut events = SseReader::new(resp);
        events.event(Duration::from_secs(5)).await; // queued
        let t = store
            .get(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no ticket"))?;
        let now = failover_core::ports::SystemClock.now_ms();
        let next = t.cancel(now, "bench").map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        store.update(&next, Status::Queued, t.version).await?;
        writes.push(started.elapsed());
        let e = events.event(Duration::from_secs(5)).await;
        anyhow::ensure!(e.is_some_and(|e| e.event.as_deref() == Some("failed")));
        delivered.push(started.elapsed());
    }
    writes.sort();
    delivered.sort();
    Ok((writes, delivered))
}

pub async fn run() -> anyhow::Result<()> {
    // Every request waits in the queue: the normal lane's window is shut.
    let mut lanes = Lanes::default();
    lanes
        .set_windows(&failover_tests::spawn::window_in_two_hours("normal"))
        .map_err(anyhow::Error::msg)?;
    let policy = Policy {
        lanes: Arc::new(lanes),
        ..Policy::default()
    };
    let dir = tempfile::tempdir()?;
    let (app, raw) = crate::build(policy, "http://127.0.0.1:9/", dir.path())?;
    let watched = app.engine.deps().tickets.clone();
    let base = serve_router(app.router).await?;
    let client = reqwest::Client::new();

    let (w, d) = measure(&client, &base, watched.as_ref(), LATENCY_TICKETS).await?;
    let (pw, pd) = measure(&client, &base, &raw, POLLED_TICKETS).await?;

    // Idle streams, on bare sockets.
    let addr = base.trim_start_matches("http://").to_string();
    let mut ids = Vec::new();
    for _ in 0..IDLE_STREAMS / 10 {
        ids.push(accepted(&client, &base).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib();
    let mut sockets = Vec::with_capacity(IDLE_STREAMS);
    for i in 0..IDLE_STREAMS {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        let id = ids[i % ids.len()];
        s.write_all(format!("GET /tickets/{id}/events HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
            .await?;
        // Up to the first event: the stream is open and registered.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("event: queued") {
            let n = s.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "stream {i} closed");
            seen.extend_from_slice(&buf[..n]);
        }
        sockets.push(s);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    // What the idle streams cost in CPU: each reads the store once a second.
    let (ticks, idle_from) = (cpu_ticks(), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = (cpu_ticks() - ticks) as f64 / 100.0 / idle_from.elapsed().as_secs_f64();
    let per_stream = (after.saturating_sub(before) * 1024) as f64 / IDLE_STREAMS as f64;

    let row = |name: &str, v: &[Duration]| {
        println!(
            "| {name} | {} | {:.2} | {:.2} |",
            v.len(),
            ms(percentile(v, 0.50)),
            ms(percentile(v, 0.99))
        )
    };
    println!("## 9. Ticket event streams (SSE, local mode)");
    println!("| from the start of the terminal write | tickets | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    row("the write alone (reference)", &w);
    row(
        "until the event reached the client (written by this process)",
        &d,
    );
    row(
        "until the event reached the client (written by another process)",
        &pd,
    );
    row("(that other writer's write alone)", &pw);
    println!(
        "ratio p99 delivered/write, this process: {:.2}; another process: {:.0}",
        ms(percentile(&d, 0.99)) / ms(percentile(&w, 0.99)),
        ms(percentile(&pd, 0.99)) / ms(percentile(&pw, 0.99))
    );
    println!(
        "idle streams: {IDLE_STREAMS} open, resident memory {:.1} MiB -> {:.1} MiB, {:.0} bytes per stream",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per_stream
    );
    println!(
        "idle CPU with them open: {:.0}% of one core (each stream reads its ticket once a second)\n",
        idle_cpu * 100.0
    );
    drop(sockets);
    Ok(())
}
