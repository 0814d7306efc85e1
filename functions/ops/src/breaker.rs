//! `failover breaker show|reset`: each breaker group's state, and closing
//! one by hand (the backend is known to be back, and waiting out the open
//! period and the probes would keep sending requests to the queue).
//!
//! Local mode keeps breakers in the server's memory, so the tool reads the
//! snapshots the server posts on the board and leaves the reset there for
//! the server to take (within one health-cache period; the tool waits to
//! see it taken). A fleet's breakers are records in the table: the tool
//! reads and resets them itself, through the same gate as every instance,
//! by compare-and-set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use failover_core::breaker::board::{BreakerBoard, Posted, ResetRequest};
use failover_core::breaker::{Breaker, HealthGate, HealthStore};
use serde_json::{json, Value};

use crate::cli::{BreakerReset, Safety};
use crate::output::{age, table, time};
use crate::stores::Opened;
use crate::{confirm, Report};

/// A group's health record, by its label.
pub type Records = Box<dyn Fn(&str) -> Arc<dyn HealthStore> + Send + Sync>;

/// Where the tool finds the breakers.
pub enum Source {
    /// A server's board, which it tends every `period`.
    Board {
        board: Arc<dyn BreakerBoard>,
        period: Duration,
    },
    /// The fleet's record of each group, by its label.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    Fleet(Records),
}

/// A post older than this many periods (plus a second) means the server
/// is not tending the board: it is not running.
const STALE_PERIODS: u32 = 3;

fn stale_after(period: Duration) -> Duration {
    period * STALE_PERIODS + Duration::from_secs(1)
}

/// The fleet's gates: one per group of the routes, as the functions build
/// them. A long cache: the tool reads only when asked (`observe`).
fn fleet_gates(
    stores: &Records,
    routes_file: Option<&std::path::Path>,
    o: &Opened,
) -> anyhow::Result<Vec<(String, Breaker)>> {
    let routes = crate::stores::routes(routes_file, &o.policy)?;
    let gates = routes.groups().into_iter().map(|(group, policy)| {
        let label = routes.group_label(group);
        let gate = Breaker::shared(
            policy,
            stores(label),
            o.clock.clone(),
            Duration::from_secs(3600),
        );
        let name = if label.is_empty() { "default" } else { label };
        (name.to_string(), gate.for_group(label))
    });
    Ok(gates.collect())
}

/// Every group's breaker, as of when it was read.
async fn read(o: &Opened, routes_file: Option<&std::path::Path>) -> anyhow::Result<Vec<Posted>> {
    match &o.breakers {
        Source::Board { board, .. } => board.posted().await.context("reading the breakers"),
        Source::Fleet(stores) => {
            let mut read = Vec::new();
            for (group, gate) in fleet_gates(stores, routes_file, o)? {
                let snapshot = gate
                    .observe()
                    .await
                    .with_context(|| format!("reading the breaker of {group}"))?;
                read.push(Posted {
                    group,
                    snapshot: json!(snapshot),
                    at_ms: o.clock.now_ms(),
                });
            }
            Ok(read)
        }
    }
}

fn print(posted: &[Posted], now: i64, json: bool) {
    if json {
        let all: Vec<Value> = posted
            .iter()
            .map(|p| json!({ "group": p.group, "as_of": time(p.at_ms), "breaker": p.snapshot }))
            .collect();
        return println!("{}", Value::Array(all));
    }
    let percent = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
    };
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = posted
        .iter()
        .map(|p| {
            let s = &p.snapshot;
            let next = s["next_probe_in_ms"].as_i64().map_or("-".into(), age);
            vec![
                p.group.clone(),
                text(&s["state"]),
                text(&s["calls"]),
                percent(&s["error_rate"]),
                percent(&s["slow_rate"]),
                next,
                text(&s["transitions"]),
                format!("{} ago", age(now - p.at_ms)),
            ]
        })
        .collect();
    let headers = [
        "GROUP",
        "STATE",
        "CALLS",
        "ERRORS",
        "SLOW",
        "NEXT PROBE",
        "TRANSITIONS",
        "AS OF",
    ];
    print!("{}", table(&headers, &rows));
}

pub async fn show(
    o: &Opened,
    routes_file: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<Report> {
    let posted = read(o, routes_file).await?;
    let now = o.clock.now_ms();
    print(&posted, now, json);
    if let Source::Board { period, .. } = &o.breakers {
        let newest = posted.iter().map(|p| p.at_ms).max();
        if newest.is_none_or(|at| now - at > stale_after(*period).as_millis() as i64) {
            eprintln!(
                "note: no gateway has posted its breakers lately: none is running on this \
                 data directory (one starts with every breaker closed)"
            );
        }
    }
    Ok(Report::Done)
}

pub async fn reset(o: &Opened, a: &BreakerReset, by: &str, json: bool) -> anyhow::Result<Report> {
    let before = read(o, a.routes_file.as_deref()).await?;
    let known: Vec<&str> = before.iter().map(|p| p.group.as_str()).collect();
    let groups: Vec<&str> = match &a.group {
        Some(g) if known.contains(&g.as_str()) => vec![g.as_str()],
        Some(g) => {
            eprintln!(
                "refused: no breaker group {g:?}; the groups are {}",
                known.join(", ")
            );
            return Ok(Report::Refused);
        }
        None => known.clone(),
    };
    if a.dry_run {
        for g in &groups {
            println!("would reset the breaker of {g}");
        }
        return Ok(Report::Done);
    }
    let safety = Safety {
        yes: a.yes,
        dry_run: false,
        max: usize::MAX,
    };
    if !confirm(
        &format!("reset {} breakers", groups.len()),
        groups.len(),
        &safety,
    )? {
        eprintln!("refused: not confirmed");
        return Ok(Report::Refused);
    }
    let report = match &o.breakers {
        Source::Fleet(stores) => {
            for (group, gate) in fleet_gates(stores, a.routes_file.as_deref(), o)? {
                if groups.contains(&group.as_str()) {
                    gate.reset()
                        .await
                        .with_context(|| format!("resetting the breaker of {group}"))?;
                    tracing::info!(group, by, "breaker reset");
                }
            }
            Report::Done
        }
        Source::Board { board, period } => {
            let asked = ResetRequest {
                id: 0,
                group: a.group.clone(),
                at_ms: o.clock.now_ms(),
                by: by.to_string(),
            };
            board
                .request_reset(&asked)
                .await
                .context("leaving the reset")?;
            // A round that starts after this has read the reset.
            taken(board.as_ref(), o.clock.now_ms(), *period).await?
        }
    };
    if report == Report::Done {
        let after = read(o, a.routes_file.as_deref()).await?;
        let now = o.clock.now_ms();
        let mine: Vec<Posted> = after
            .into_iter()
            .filter(|p| groups.contains(&p.group.as_str()))
            .collect();
        if !json {
            println!("reset by {by}:");
        }
        print(&mine, now, json);
    }
    Ok(report)
}

/// Waits for a post of a round that started after `at_ms`.
async fn taken(board: &dyn BreakerBoard, at_ms: i64, period: Duration) -> anyhow::Result<Report> {
    let give_up = tokio::time::Instant::now() + stale_after(period);
    loop {
        let posted = board.posted().await.context("reading the breakers")?;
        // A round posts with the time it started, before reading resets.
        if posted.iter().any(|p| p.at_ms > at_ms) {
            return Ok(Report::Done);
        }
        if tokio::time::Instant::now() >= give_up {
            eprintln!(
                "refused: no gateway took the reset within {} s: none is running on this \
                 data directory (one starts with every breaker closed)",
                stale_after(period).as_secs()
            );
            return Ok(Report::Refused);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The fleet's health records in the table, by group label.
#[cfg(feature = "aws")]
pub fn fleet(store: failover_adapters::aws::DynamoStore) -> Source {
    Source::Fleet(Box::new(move |label| Arc::new(store.health(label))))
}
