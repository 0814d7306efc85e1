//! Part 8: lanes after an outage. The backend fails, the breaker opens, a
//! backlog of 10% critical, 60% normal and 30% bulk arrives (bulk's window
//! closed), the backend recovers, and the worker drains at a bound of R
//! per second. It reports the time from the drain's start (its first
//! completion) until the last critical ticket is done over the time until
//! the last normal one is (target
//! <= 0.2), and how many bulk tickets were attempted outside their window
//! (target 0). The reference is the same backlog without lanes (arrival
//! order): there the ratio is about 1.

use std::time::{Duration, Instant};

use failover_core::engine::Submission;
use failover_core::lane::{Lane, Lanes};
use failover_core::ports::TicketStore;
use failover_core::ticket::Ticket;
use failover_core::{Clock, Policy};
use failover_local::demo::{DemoBackend, DemoSettings};

const BACKLOG: usize = 3000;
const RATE: u32 = 200;
const RULES: &str = r#"[{"lane":"critical","pointer":"/amount","gte":10000},
                        {"lane":"bulk","pointer":"/kind","eq":"report"}]"#;

fn body(i: usize) -> (Lane, Vec<u8>) {
    let (lane, text) = match i % 10 {
        0 => (
            Lane::Critical,
            format!(r#"{{"amount":{},"i":{i}}}"#, 10_000 + i),
        ),
        1..=6 => (Lane::Normal, format!(r#"{{"amount":{i},"i":{i}}}"#)),
        _ => (Lane::Bulk, format!(r#"{{"kind":"report","i":{i}}}"#)),
    };
    (lane, text.into_bytes())
}

/// A window that is closed now: an hour, starting in two (UTC).
fn closed_window() -> String {
    let minute = failover_core::ports::SystemClock.now_ms() / 60_000;
    let at = |h: i64| {
        let m = (minute + h * 60).rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    format!(r#"{{"bulk":["{}-{} UTC"]}}"#, at(2), at(3))
}

struct Drained {
    critical_s: f64,
    normal_s: f64,
    bulk_attempted: usize,
    total_s: f64,
}

async fn drain(lanes: bool) -> anyhow::Result<Drained> {
    let mut lane_config = Lanes::default();
    if lanes {
        lane_config.set_rules(RULES).map_err(anyhow::Error::msg)?;
        lane_config
            .set_windows(&closed_window())
            .map_err(anyhow::Error::msg)?;
    }
    let policy = Policy {
        drain_max_rps: RATE,
        drain_ramp: Duration::from_secs(1),
        breaker_min_calls: 5,
        breaker_open: Duration::from_millis(1000),
        breaker_close_after: 1,
        sync_deadline: Duration::from_millis(500),
        lanes: std::sync::Arc::new(lane_config),
        ..Policy::default()
    };
    let demo = DemoBackend::default();
    demo.set(DemoSettings {
        latency_ms: 0,
        error_rate: 1.0,
    });
    let url = demo.start().await?;
    let dir = tempfile::tempdir()?;
    let (app, store) = crate::build(policy, &url, dir.path())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.worker.clone().run(crate::CONCURRENCY, async move {
        let _ = stopped.await;
    }));
    // The outage: failures open the breaker, the backlog arrives.
    let mut ids = Vec::new();
    for i in 0..BACKLOG {
        let (lane, bytes) = body(i);
        let sub = Submission {
            body: bytes,
            content_type: "application/json".into(),
            request_id: format!("lanes-{i}"),
            ..Submission::default()
        };
        let done = app.engine.submit(sub).await?;
        if let failover_core::engine::Answer::Accepted { ticket_id, .. } = done.answer {
            ids.push((lane, ticket_id));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    demo.set(DemoSettings {
        latency_ms: 0,
        error_rate: 0.0,
    });
    let recovered = failover_core::ports::SystemClock.now_ms();
    let started = Instant::now();
    let waiting = |t: &Ticket| t.request.lane == Lane::Bulk && lanes;
    let limit = Instant::now() + Duration::from_secs(120);
    let tickets = loop {
        let mut tickets = Vec::new();
        for (_, id) in &ids {
            tickets.push(store.get(id).await?.ok_or(anyhow::anyhow!("lost {id}"))?);
        }
        if tickets.iter().all(|t| t.status.is_terminal() || waiting(t)) {
            break tickets;
        }
        anyhow::ensure!(Instant::now() < limit, "the drain did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let total_s = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = run.await;
    // From the drain's first completion (the breaker's own time to see the
    // recovery is not the lanes' doing); lanes as the rules would give
    // them, also for the reference that has none.
    let by_lane: Vec<(Lane, &Ticket)> = ids.iter().map(|(l, _)| *l).zip(&tickets).collect();
    let first = tickets
        .iter()
        .filter(|t| t.status.is_terminal() && t.updated_at >= recovered)
        .map(|t| t.updated_at)
        .min()
        .unwrap_or(recovered);
    let done = |lane: Lane| {
        by_lane
            .iter()
            .filter(|(l, t)| *l == lane && t.status.is_terminal())
            .map(|(_, t)| (t.updated_at - first) as f64 / 1000.0)
            .fold(0.0, f64::max)
    };
    let in_lane = |lane: Lane| {
        by_lane
            .iter()
            .filter(move |(l, _)| *l == lane)
            .map(|(_, t)| t)
    };
    Ok(Drained {
        critical_s: done(Lane::Critical),
        normal_s: done(Lane::Normal),
        bulk_attempted: in_lane(Lane::Bulk).filter(|t| t.attempts > 0).count(),
        total_s,
    })
}

pub async fn run() -> anyhow::Result<()> {
    println!(
        "## 8. Lanes after an outage ({BACKLOG} requests: 10% critical, 60% normal, 30% bulk \
         with its window closed; drain bound {RATE}/s)"
    );
    let with = drain(true).await?;
    let without = drain(false).await?;
    println!("| | last critical done | last normal done | ratio | bulk attempted outside its window | drain time |");
    println!("|---|---|---|---|---|---|");
    for (name, d) in [("lanes", &with), ("arrival order (reference)", &without)] {
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.3} | {} | {:.2} s |",
            d.critical_s,
            d.normal_s,
            d.critical_s / d.normal_s,
            d.bulk_attempted,
            d.total_s
        );
    }
    println!(
        "ratio {:.3} (target <= 0.2), bulk attempted outside its window: {} (target 0)\n",
        with.critical_s / with.normal_s,
        with.bulk_attempted
    );
    Ok(())
}
