//! The built-in demo backend of local mode (when `BACKEND_URL` is unset).
//!
//! A real HTTP server on a loopback port whose latency and error rate change
//! at run time through `POST /demo/backend {"latency_ms": N, "error_rate": F}`
//! on the gateway's own port, so a newcomer can watch the gateway answer in
//! sync, fail over to 202 when the backend slows down, and the worker finish
//! the tickets once it recovers. It honours `Idempotency-Key` the way a real
//! payment API does: the same key gets the same answer, processed once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use failover_api::problem::ApiError;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::answers::Answers;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    pub latency_ms: u64,
    pub error_rate: f64,
}

#[derive(Clone, Default)]
pub struct DemoBackend {
    settings: Arc<Mutex<Option<DemoSettings>>>,
    /// Answers by idempotency key, the most recent within a byte budget.
    done: Arc<Mutex<Answers>>,
}

impl DemoBackend {
    pub fn settings(&self) -> DemoSettings {
        self.settings
            .lock()
            .map(|s| {
                s.unwrap_or(DemoSettings {
                    latency_ms: 50,
                    error_rate: 0.0,
                })
            })
            .unwrap_or(DemoSettings {
                latency_ms: 50,
                error_rate: 0.0,
            })
    }

    /// Changes the latency and error rate (what `POST /demo/backend` does).
    pub fn set(&self, s: DemoSettings) {
        if let Ok(mut g) = self.settings.lock() {
            *g = Some(s);
        }
    }

    /// Starts the backend on an ephemeral loopback port; returns its URL.
    pub async fn start(&self) -> std::io::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let app = Router::new()
            .fallback(post(handle))
            .with_state(self.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "demo backend stopped");
            }
        });
        Ok(url)
    }

    /// `GET|POST /demo/backend`, merged into the gateway's router.
    pub fn control_routes(&self) -> Router {
        Router::new()
            .route("/demo/backend", post(configure).get(current))
            .with_state(self.clone())
    }
}

async fn handle(State(demo): State<DemoBackend>, headers: HeaderMap, body: Bytes) -> Response {
    let s = demo.settings();
    tokio::time::sleep(Duration::from_millis(s.latency_ms)).await;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(prev) = key.as_ref().and_then(|k| demo.done.lock().ok()?.get(k)) {
        return (StatusCode::OK, Json(prev)).into_response();
    }
    if rand::rng().random_bool(s.error_rate.clamp(0.0, 1.0)) {
        let err = json!({"error": "demo backend: injected failure"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(err)).into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = json!({
        "status": "processed",
        "request": request,
        "idempotency_key": key,
        "processed_at": failover_core::view::rfc3339(chrono_now()),
    });
    if let (Some(k), Ok(mut done)) = (key, demo.done.lock()) {
        done.insert(k, answer.clone());
    }
    (StatusCode::OK, Json(answer)).into_response()
}

fn chrono_now() -> i64 {
    use failover_core::Clock;
    failover_core::ports::SystemClock.now_ms()
}

async fn current(State(demo): State<DemoBackend>) -> Json<DemoSettings> {
    Json(demo.settings())
}

async fn configure(
    State(demo): State<DemoBackend>,
    body: Bytes,
) -> Result<Json<DemoSettings>, ApiError> {
    let s: DemoSettings = serde_json::from_slice(&body).map_err(|e| {
        ApiError::MalformedJson(format!(
            "expected {{\"latency_ms\": N, \"error_rate\": F}}: {e}"
        ))
    })?;
    if !(0.0..=1.0).contains(&s.error_rate) {
        return Err(ApiError::BadParameter(
            "error_rate must be between 0 and 1".into(),
        ));
    }
    if s.latency_ms > 600_000 {
        return Err(ApiError::BadParameter(
            "latency_ms must be at most 600000".into(),
        ));
    }
    demo.set(s);
    tracing::info!(
        latency_ms = s.latency_ms,
        error_rate = s.error_rate,
        "demo backend changed"
    );
    Ok(Json(s))
}
