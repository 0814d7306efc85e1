//! Part 5: a chaos run. The backend goes from healthy to hanging and back
//! while paced clients keep sending; nobody touches the gateway.
//!
//! It shows, per phase: how many requests got a sync answer and how many a
//! 202 (by reason), how fast the 202s came (the breaker makes them far
//! faster than the deadline once it opens), that every 202 ends
//! `succeeded` (nothing lost), and how long after the backend recovered the
//! first sync answer came back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use failover_core::ports::TicketStore;
use failover_core::Policy;
use failover_local::demo::{DemoBackend, DemoSettings};
use serde_json::Value;

use crate::load::percentile;

const CLIENTS: usize = 8;
const PACE: Duration = Duration::from_millis(20);
const DRAIN_MAX_RPS: u32 = 200;
const DRAIN_RAMP: Duration = Duration::from_secs(10);
const HEALTHY: DemoSettings = DemoSettings {
    latency_ms: 20,
    error_rate: 0.0,
};
/// Slower than any deadline used here: the backend is effectively down.
const HANGING: DemoSettings = DemoSettings {
    latency_ms: 60_000,
    error_rate: 0.0,
};

struct Sample {
    sent: Duration,
    latency: Duration,
    status: u16,
    reason: Option<String>,
    ticket: Option<String>,
}

pub async fn run() -> anyhow::Result<()> {
    let demo = DemoBackend::default();
    demo.set(HEALTHY);
    let backend_url = demo.start().await?;
    let deadline = Duration::from_millis(300);
    let policy = Policy {
        sync_deadline: deadline,
        slow_call: deadline,
        breaker_window: Duration::from_secs(5),
        breaker_open: Duration::from_secs(1),
        breaker_open_max: Duration::from_secs(4),
        worker_deadline: Duration::from_secs(1),
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(2),
        drain_max_rps: DRAIN_MAX_RPS,
        drain_ramp: DRAIN_RAMP,
        ..Policy::default()
    };
    let dir = tempfile::tempdir()?;
    let (app, store) = crate::build(policy, &backend_url, dir.path())?;
    let engine = app.engine.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(failover_local::serve(listener, app, 16, async move {
        let _ = stopped.await;
    }));

    let (outage_at, recovery_at, end_at) = (
        Duration::from_secs(3),
        Duration::from_secs(11),
        Duration::from_secs(19),
    );
    let started = Instant::now();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url) = (client.clone(), format!("{base}/requests"));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0u64;
            while started.elapsed() < end_at {
                let sent = started.elapsed();
                let t = Instant::now();
                let resp = crate::load::post_request(&client, &url, c, i).await?;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                out.push(Sample {
                    sent,
                    latency: t.elapsed(),
                    status,
                    reason: body["reason"].as_str().map(str::to_string),
                    ticket: body["ticket_id"].as_str().map(str::to_string),
                });
                i += 1;
                tokio::time::sleep(PACE).await;
            }
            anyhow::Ok(out)
        }));
    }
    tokio::time::sleep(outage_at).await;
    demo.set(HANGING);
    tokio::time::sleep(recovery_at - outage_at).await;
    demo.set(HEALTHY);
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await??);
    }
    let transitions = engine.deps().health.gate("").snapshot().await.transitions;

    // Every 202 must end succeeded.
    let tickets: Vec<String> = samples.iter().filter_map(|s| s.ticket.clone()).collect();
    let limit = Instant::now() + Duration::from_secs(120);
    let mut pending = tickets.clone();
    while !pending.is_empty() && Instant::now() < limit {
        let mut still = Vec::new();
        for id in pending {
            let t = store.get(&id.parse()?).await?;
            if !t.is_some_and(|t| t.status.is_terminal()) {
                still.push(id);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started.elapsed().saturating_sub(recovery_at);
    let mut succeeded = 0;
    for id in &tickets {
        let t = store.get(&id.parse()?).await?;
        if t.is_some_and(|t| t.status == failover_core::ticket::Status::Succeeded) {
            succeeded += 1;
        }
    }
    let _ = stop.send(());
    let _ = server.await;

    let phase = |s: &Sample| {
        if s.sent < outage_at {
            "1 healthy"
        } else if s.sent < recovery_at {
            "2 backend hanging"
        } else {
            "3 recovered"
        }
    };
    println!("## 5. Chaos run ({CLIENTS} paced clients, deadline 300 ms, backend hangs from 3 s to 11 s)");
    println!("| phase | requests | sync | 202 by reason | 202 p50 ms | 202 p99 ms | other |");
    println!("|---|---|---|---|---|---|---|");
    let mut by_phase: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in &samples {
        by_phase.entry(phase(s)).or_default().push(s);
    }
    for (name, list) in &by_phase {
        let sync = list.iter().filter(|s| s.status == 200).count();
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        let mut lat: Vec<Duration> = Vec::new();
        for s in list.iter().filter(|s| s.status == 202) {
            *reasons
                .entry(s.reason.as_deref().unwrap_or("?"))
                .or_default() += 1;
            lat.push(s.latency);
        }
        lat.sort_unstable();
        let other = list
            .iter()
            .filter(|s| s.status != 200 && s.status != 202)
            .count();
        let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {name} | {} | {sync} | {} | {:.1} | {:.1} | {other} |",
            list.len(),
            if reasons.is_empty() {
                "-".into()
            } else {
                reasons.join(", ")
            },
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
        );
    }
    let back = samples
        .iter()
        .filter(|s| s.sent >= recovery_at && s.status == 200)
        .map(|s| s.sent + s.latency)
        .min();
    println!(
        "accepted {} (202), succeeded {succeeded}, lost {}; breaker transitions {transitions}",
        tickets.len(),
        tickets.len() - succeeded
    );
    println!(
        "backlog done {:.1} s after recovery (drain bounded at {DRAIN_MAX_RPS}/s per worker, ramped from a tenth over {} s)",
        drained.as_secs_f64(),
        DRAIN_RAMP.as_secs()
    );
    match back {
        Some(at) => println!(
            "first sync answer {:.1} s after the backend recovered, with nobody touching the gateway\n",
            (at - recovery_at).as_secs_f64()
        ),
        None => println!("sync mode did not come back during the run\n"),
    }
    Ok(())
}
