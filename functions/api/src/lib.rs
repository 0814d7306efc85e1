//! # failover-api
//!
//! The ONE axum router of the HTTP API (CONTRACT.md). Local mode serves it
//! with `axum::serve`; the Lambda function serves the same router with
//! `lambda_http::run`, so the two cannot drift.
//!
//! The router validates input and renders output; every decision is the
//! engine's ([`failover_core::Engine`]). Errors are problem+json, mapped in
//! [`problem`].

pub mod events;
pub mod health;
pub mod problem;
pub mod requests;
pub mod tickets;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::get;
use axum::Router;
use failover_core::callback::CallbackRules;
use failover_core::Engine;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::problem::ApiError;

/// A cap on the time a request may take, set by the host: the Lambda
/// function inserts it (remaining invocation time minus the capture
/// reserve) as a request extension. It caps the sync deadline and a long
/// poll's wait.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineCap(pub Duration);

/// Who is calling, as the host authenticated them (on AWS: the IAM caller
/// or the JWT's subject), inserted as a request extension. Idempotency-Keys
/// are scoped per caller: one client's key never replays another's answer.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Caller {
    /// What is kept of the caller: a hash, so tickets and keys name no one.
    pub fn fingerprint(&self) -> String {
        failover_core::idempotency::fingerprint(self.0.as_bytes())[..32].to_string()
    }
}

/// Long polls held at once; more answer at once with the current state (a
/// poll reads the store, and the worker needs it too).
pub const MAX_LONG_POLLS: usize = 64;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub callback_rules: CallbackRules,
    /// Whether completions are signed, so `Callback-Url` may be used: the
    /// policy has the secret, or (AWS) the worker reads it at start.
    pub signs_webhooks: bool,
    pub long_polls: Arc<tokio::sync::Semaphore>,
    /// Event streams held at once ([`events::MAX_STREAMS`]).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// How often an idle event stream sends a comment.
    pub heartbeat: Duration,
    /// Where clients follow a ticket's events, if not this API's own
    /// `/tickets/{id}/events` (AWS: the streaming function's URL).
    pub events_base: Option<String>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> Self {
        let p = engine.policy();
        let callback_rules = CallbackRules {
            allow_private: p.allow_private_callbacks,
            allow_loopback: p.allow_loopback_callbacks,
        };
        Self {
            signs_webhooks: p.webhook_secret.is_some(),
            engine,
            callback_rules,
            long_polls: Arc::new(tokio::sync::Semaphore::new(MAX_LONG_POLLS)),
            streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
            heartbeat: events::HEARTBEAT,
            events_base: None,
        }
    }
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(req.method().to_string())
}

/// The API. Every response carries `X-Request-Id` (the client's, or a new
/// UUID).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/tickets/{id}",
            get(tickets::get_ticket).delete(tickets::cancel_ticket),
        )
        .route("/tickets/{id}/result", get(tickets::get_result))
        .route("/tickets/{id}/events", get(events::ticket_events))
        .route("/health", get(health::health))
        // Everything else is the API behind the gateway: the engine's
        // routes decide (`POST /requests` without a routes file).
        .fallback(requests::submit)
        .method_not_allowed_fallback(wrong_method)
        // The handler enforces MAX_BODY_BYTES itself, with a problem+json 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    layered(api)
}

/// Only `GET /tickets/{id}/events`, for a host that serves event streams
/// apart from the API (AWS: a streaming function URL); everything else is
/// a problem+json 404, so that host is no second way in for requests.
pub fn events_router(state: AppState) -> Router {
    let events = Router::new()
        .route("/tickets/{id}/events", get(events::ticket_events))
        .fallback(|| async { ApiError::Submit(failover_core::engine::SubmitError::NotFound) })
        .with_state(state);
    layered(events)
}

/// Request ids and the request span, around either router.
fn layered(r: Router) -> Router {
    r.layer(
        tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::x_request_id()),
    )
}

/// Adds the backend's response headers that its route passes on.
pub(crate) fn pass_on(resp: &mut axum::response::Response, headers: &[(String, String)]) {
    use axum::http::{HeaderName, HeaderValue};
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
}
