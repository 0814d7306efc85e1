//! `failover drill ...`: start, stop and show drills.

use anyhow::Context;
use failover_core::config::ForceMode;
use failover_core::drill::{Drill, Scope};
use failover_core::route::Route;
use failover_core::Policy;
use serde_json::json;

use crate::cli::DrillScope;
use crate::output::{parse_age, table, time};
use crate::stores::Opened;
use crate::{Report, Usage};

/// The longest drill: one forgotten must not outlive a day.
const LONGEST_MS: i64 = 24 * 3_600_000;

/// The scope asked for, checked against the routes the server has.
fn scope(s: &DrillScope) -> anyhow::Result<Result<Scope, String>> {
    let routes = crate::stores::routes(s.routes_file.as_deref(), &Policy::default())?;
    let known = |of: fn(&Route) -> &str| -> Vec<String> {
        let mut v: Vec<String> = routes.routes().iter().map(|r| of(r).to_string()).collect();
        v.sort();
        v.dedup();
        v
    };
    let pick =
        |wanted: &str, known: Vec<String>, what: &str| match known.iter().any(|k| k == wanted) {
            true => Ok(wanted.to_string()),
            false => Err(format!(
                "no {what} {wanted:?}; the {what}s are {}",
                known.join(", ")
            )),
        };
    Ok(match (&s.route, &s.group) {
        (Some(r), _) => pick(r, known(|r| &r.name), "route").map(Scope::Route),
        (None, Some(g)) => pick(g, known(|r| &r.group), "breaker group").map(Scope::Group),
        (None, None) => Ok(Scope::All),
    })
}

pub async fn start(
    o: &Opened,
    mode: &str,
    duration: &str,
    s: &DrillScope,
    by: &str,
    json: bool,
) -> anyhow::Result<Report> {
    let length = parse_age(duration)?;
    if length <= 0 || length > LONGEST_MS {
        return Err(Usage(format!("--for {duration}: from 1s to 24h")).into());
    }
    let scope = match scope(s)? {
        Ok(scope) => scope,
        Err(why) => {
            eprintln!("refused: {why}");
            return Ok(Report::Refused);
        }
    };
    let now = o.clock.now_ms();
    let drill = Drill {
        mode: if mode == "sync" {
            ForceMode::Sync
        } else {
            ForceMode::Async
        },
        scope,
        started_ms: now,
        until_ms: now + length,
        by: by.to_string(),
    };
    o.drills.start(&drill).await.context("starting the drill")?;
    tracing::info!(
        mode = drill.mode.as_str(),
        scope = drill.scope.key(),
        until = time(drill.until_ms),
        by,
        "drill started"
    );
    match json {
        true => println!("{}", render(&drill)),
        false => println!(
            "drill started: {} for {}, until {} (every instance within one health-cache period)",
            drill.mode.as_str(),
            drill.scope.key(),
            time(drill.until_ms)
        ),
    }
    Ok(Report::Done)
}

pub async fn stop(o: &Opened, s: &DrillScope, by: &str, json: bool) -> anyhow::Result<Report> {
    let scope = match (&s.route, &s.group) {
        (None, None) => None,
        _ => match self::scope(s)? {
            Ok(scope) => Some(scope),
            Err(why) => {
                eprintln!("refused: {why}");
                return Ok(Report::Refused);
            }
        },
    };
    let stopped = o.drills.stop(scope.as_ref()).await.context("stopping")?;
    let scope = scope.map_or("every scope".into(), |s| s.key());
    tracing::info!(stopped, scope, by, "drills stopped");
    match json {
        true => println!("{}", json!({ "stopped": stopped })),
        false => println!("{stopped} drill(s) stopped"),
    }
    Ok(Report::Done)
}

fn render(d: &Drill) -> serde_json::Value {
    json!({
        "mode": d.mode.as_str(),
        "scope": d.scope.key(),
        "by": d.by,
        "since": time(d.started_ms),
        "until": time(d.until_ms),
    })
}

pub async fn show(o: &Opened, json: bool) -> anyhow::Result<Report> {
    let now = o.clock.now_ms();
    let drills: Vec<Drill> = o
        .drills
        .drills()
        .await
        .context("reading the drills")?
        .into_iter()
        .filter(|d| d.active(now))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::Value::Array(drills.iter().map(render).collect())
        );
        return Ok(Report::Done);
    }
    let rows: Vec<Vec<String>> = drills
        .iter()
        .map(|d| {
            let until = time(d.until_ms);
            vec![d.scope.key(), d.mode.as_str().into(), d.by.clone(), until]
        })
        .collect();
    print!("{}", table(&["SCOPE", "MODE", "BY", "UNTIL"], &rows));
    Ok(Report::Done)
}
