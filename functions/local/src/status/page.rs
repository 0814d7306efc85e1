//! The page and its stream: `GET /status` (one HTML file, script inline)
//! and `GET /status/stream` (Server-Sent Events: `history`, the samples
//! kept, then a `sample` a second).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::Status;

const PAGE: &str = include_str!("status.html");

pub fn routes(status: Arc<Status>) -> Router {
    Router::new()
        .route("/status", get(page))
        .route("/status/stream", get(samples))
        .with_state(status)
}

async fn page() -> Response {
    let mut resp = Html(PAGE).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}

async fn samples(State(status): State<Arc<Status>>) -> Response {
    let (history, live) = status.subscribe();
    let history: Vec<&serde_json::Value> = history.iter().map(|s| s.as_ref()).collect();
    let first = Event::default()
        .event("history")
        .data(serde_json::to_string(&history).unwrap_or_else(|_| "[]".into()));
    let events = stream::unfold((Some(first), live), |(first, mut live)| async move {
        if let Some(e) = first {
            return Some((Ok::<_, Infallible>(e), (None, live)));
        }
        loop {
            match live.recv().await {
                Ok(s) => {
                    let e = Event::default().event("sample").data(s.to_string());
                    return Some((Ok(e), (None, live)));
                }
                // A slow page missed some: it catches up with the next.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
