//! AWS mode for the router: the Lambda function behind API Gateway.
//!
//! Clients are built once per instance, without any network call (cold
//! starts stay short). Each request's sync deadline is capped by what is
//! left of the invocation minus a reserve for the capture, so a slow backend
//! still leaves time to write the ticket and the message before Lambda stops
//! the function: a request is answered 202 (or 503), never cut off. The
//! caller API Gateway authenticated (IAM or JWT) scopes Idempotency-Keys.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use failover_adapters::aws::env::{init_json_tracing, ports, AwsSettings};
use failover_core::trace::Tracer;
use failover_core::{Engine, Policy};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use failover_api::{events_router, router, AppState, Caller, DeadlineCap};

/// What must stay free after the sync attempt: two capture writes.
fn capture_reserve(policy: &Policy) -> Duration {
    policy.capture_timeout * 2 + Duration::from_millis(100)
}

/// The caller API Gateway authenticated: the IAM caller (`AWS_IAM`) or the
/// JWT's `sub` (`JWT`); `None` without authentication.
fn caller(req: &Request) -> Option<Caller> {
    let RequestContext::ApiGatewayV2(ctx) = req.request_context_ref()? else {
        return None;
    };
    let auth = ctx.authorizer.as_ref()?;
    let iam = auth.iam.as_ref().and_then(|i| {
        i.user_arn
            .clone()
            .or_else(|| i.caller_id.clone())
            .map(|who| format!("iam:{who}"))
    });
    let jwt = auth.jwt.as_ref().and_then(|j| {
        let issuer = j.claims.get("iss").map(String::as_str).unwrap_or("");
        j.claims.get("sub").map(|sub| format!("jwt:{issuer}:{sub}"))
    });
    iam.or(jwt).map(Caller)
}

/// What the invocation tells each request: its time cap and its caller.
/// Once answered, the request's spans are sent: the process may be frozen
/// as soon as the response is out.
async fn from_invocation(
    reserve: Duration,
    tracer: Arc<dyn Tracer>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(who) = caller(&req) {
        req.extensions_mut().insert(who);
    }
    if let Some(ctx) = req.lambda_context_ref() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let left = Duration::from_millis(ctx.deadline.saturating_sub(now));
        req.extensions_mut()
            .insert(DeadlineCap(left.saturating_sub(reserve)));
    }
    let response = next.run(req).await;
    tracer.flush().await;
    response
}

async fn state(handler: &str) -> Result<AppState, lambda_http::Error> {
    init_json_tracing();
    let policy = Policy::from_env(Policy::default())?;
    let settings = AwsSettings::from_env()?;
    let ports = ports(&settings, &policy, handler).await?;
    let engine = Engine::new(Arc::new(policy), ports.deps).with_drills(ports.store.clone());
    let mut state = AppState::new(Arc::new(engine));
    // The worker reads the secret; this function only knows there is one.
    state.signs_webhooks |= settings.webhook_secret_id.is_some();
    state.events_base = std::env::var("EVENTS_URL")
        .ok()
        .map(|u| u.trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty());
    Ok(state)
}

pub async fn run() -> Result<(), lambda_http::Error> {
    let state = state("api").await?;
    let reserve = capture_reserve(state.engine.policy());
    let tracer = state.engine.deps().tracer.clone();
    let app = router(state).layer(middleware::from_fn(move |req, next| {
        from_invocation(reserve, tracer.clone(), req, next)
    }));
    lambda_http::run(app).await
}

/// What an event stream keeps free of the invocation: time to end the
/// stream cleanly (the client then reconnects with `Last-Event-ID`).
const STREAM_RESERVE: Duration = Duration::from_secs(1);

/// The `events` function: only the event-stream route (its function URL
/// must not become a second way in for requests), streamed as it is
/// written, each stream ending a second before the invocation would.
pub async fn run_events() -> Result<(), lambda_http::Error> {
    let state = state("events").await?;
    let tracer = state.engine.deps().tracer.clone();
    let app = events_router(state).layer(middleware::from_fn(move |req, next| {
        from_invocation(STREAM_RESERVE, tracer.clone(), req, next)
    }));
    lambda_http::run_with_streaming_response(app).await
}
