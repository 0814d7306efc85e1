//! `GET /health`: the failover state an operator (or a load balancer) reads:
//! mode, the breakers (state, rates, p95, next probe), sync load and queue.
//!
//! A drill (see `failover_core::drill`) shows in `drills` (mode, scope, who,
//! until when); one for everything sets `mode`.
//!
//! Each breaker group has its own breaker (see `failover_core::route`):
//! `breakers` lists them all, `breaker` is the first (the only one without
//! a routes file), and `mode` is `sync` only while every group is closed.

use axum::extract::State;
use axum::Json;
use failover_core::config::ForceMode;
use failover_core::drill::Scope;
use serde_json::{json, Value};

use crate::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let engine = &state.engine;
    let policy = engine.policy();
    let breakers = engine.breakers().await;
    let all_closed = breakers.iter().all(|(_, b)| b.state == "closed");
    // A drill for everything sets the mode; one for a part shows below.
    let drills = engine.drills();
    let everywhere = drills.iter().find(|d| d.scope == Scope::All);
    let forced = everywhere.map_or(policy.force_mode, |d| d.mode);
    let mode = match (forced, all_closed) {
        (ForceMode::Async, _) => "async",
        (ForceMode::Sync, _) | (ForceMode::Auto, true) => "sync",
        _ => "async",
    };
    let breaker = breakers.first().map(|(_, b)| b.clone());
    let groups: serde_json::Map<String, Value> = breakers
        .into_iter()
        .map(|(group, b)| (group, json!(b)))
        .collect();
    let now = engine.deps().clock.now_ms();
    let queue = match engine.backlog().await {
        Ok(s) => json!({
            "available": true,
            "depth": s.visible + s.in_flight,
            "visible": s.visible,
            "in_flight": s.in_flight,
            "dead_letters": s.dead_letters,
            "oldest_age_ms": s.oldest_age_ms,
            "lanes": s.lanes.iter().map(|l| {
                // A lane with windows says whether it is in one, and if
                // not, when the next opens.
                let windows = policy.lanes.windows(l.lane);
                let opens = policy.lanes.opens_at(l.lane, now);
                let mut lane = json!({
                    "lane": l.lane,
                    "depth": l.visible + l.in_flight,
                    "visible": l.visible,
                    "in_flight": l.in_flight,
                    "oldest_age_ms": l.oldest_age_ms,
                });
                if !windows.is_empty() {
                    lane["windows"] = json!(windows.iter().map(|w| w.text()).collect::<Vec<_>>());
                    lane["open"] = json!(opens.is_none());
                    lane["opens_at"] = json!(opens.map(failover_core::view::rfc3339));
                }
                lane
            }).collect::<Vec<_>>(),
        }),
        Err(e) => json!({ "available": false, "error": e }),
    };
    Json(json!({
        "mode": mode,
        "force_mode": policy.force_mode.as_str(),
        "drills": drills.iter().map(|d| json!({
            "mode": d.mode.as_str(),
            "scope": d.scope.key(),
            "by": d.by,
            "since": failover_core::view::rfc3339(d.started_ms),
            "until": failover_core::view::rfc3339(d.until_ms),
        })).collect::<Vec<_>>(),
        "breaker": breaker,
        "breakers": groups,
        "routes": engine
            .routes()
            .iter()
            .map(|r| json!({"name": r.name, "method": r.method, "path": r.path, "group": r.group}))
            .collect::<Vec<_>>(),
        "sync": {
            "inflight": engine.sync_inflight(),
            "max_inflight": policy.sync_max_inflight,
            "deadline_ms": policy.sync_deadline.as_millis() as u64,
        },
        "queue": queue,
    }))
}
