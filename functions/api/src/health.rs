//! `GET /health`: the failover state an operator (or a load balancer) reads.

use axum::extract::State;
use axum::Json;
use failover_core::config::ForceMode;
use serde_json::{json, Value};

use crate::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let engine = &state.engine;
    let policy = engine.policy();
    let breaker = engine.deps().health.snapshot().await;
    let mode = match (policy.force_mode, breaker.state) {
        (ForceMode::Async, _) => "async",
        (ForceMode::Sync, _) | (ForceMode::Auto, "closed") => "sync",
        _ => "async",
    };
    let queue = match engine.deps().queue.stats().await {
        Ok(s) => json!({
            "available": true,
            "depth": s.visible + s.in_flight,
            "visible": s.visible,
            "in_flight": s.in_flight,
            "dead_letters": s.dead_letters,
            "oldest_age_ms": s.oldest_age_ms,
        }),
        Err(e) => json!({ "available": false, "error": e.to_string() }),
    };
    Json(json!({
        "mode": mode,
        "force_mode": policy.force_mode.as_str(),
        "breaker": breaker,
        "sync": {
            "inflight": engine.sync_inflight(),
            "max_inflight": policy.sync_max_inflight,
            "deadline_ms": policy.sync_deadline.as_millis() as u64,
        },
        "queue": queue,
    }))
}
