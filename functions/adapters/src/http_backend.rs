//! The protected backend over HTTP: the route's method and URL, the headers
//! it forwards, and the body's exact bytes.
//!
//! Shared by local mode and the Lambda functions. It sends the ticket id as
//! `Idempotency-Key` (the backend can deduplicate a sync attempt that timed
//! out and the background attempt that follows) and the request id. It sets
//! no overall timeout of its own: the engine and the worker own the deadline
//! and drop the call when it passes.
//!
//! It reads at most `MAX_ANSWER_BYTES` of an answer. A longer one cannot be
//! kept (nor replayed, nor stored on a ticket), yet the backend did act on
//! the request, so it is not an error to retry: the answer keeps its status
//! and its body becomes a problem+json saying it was too large. The client
//! learns the outcome, and the backend is never called again for it.

use std::time::Duration;

use async_trait::async_trait;
use failover_core::ports::{Backend, BackendError, BackendRequest, BackendResponse};

#[derive(Clone)]
pub struct HttpBackend {
    client: reqwest::Client,
    max_answer: usize,
}

/// What an answer longer than `max` bytes is kept as.
fn too_large(status: u16, max: usize) -> BackendResponse {
    let problem = serde_json::json!({
        "type": "/problems/answer-too-large",
        "title": "The backend's answer was too large to keep",
        "status": status,
        "detail": format!(
            "the backend answered {status} with more than MAX_ANSWER_BYTES ({max}) bytes; \
             the request was processed, its answer was not kept"
        ),
    });
    BackendResponse {
        status,
        body: problem.to_string().into_bytes(),
        content_type: Some("application/problem+json".into()),
        headers: Vec::new(),
    }
}

impl HttpBackend {
    /// Backend URLs come with each request (from the routes, checked at
    /// start); `max_answer` is `MAX_ANSWER_BYTES`.
    pub fn new(max_answer: usize) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, max_answer })
    }
}

#[async_trait]
impl Backend for HttpBackend {
    async fn call(&self, req: BackendRequest<'_>) -> Result<BackendResponse, BackendError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| BackendError(format!("method {}: {e}", req.method)))?;
        let mut call = self
            .client
            .request(method, req.url)
            .header("idempotency-key", req.ticket_id.to_string())
            .header("x-request-id", req.request_id);
        let traced = req.trace.map(|t| t.headers()).unwrap_or_default();
        for (name, value) in req.headers {
            // The gateway's own span replaces a forwarded trace context.
            if traced.is_empty() || !matches!(name.as_str(), "traceparent" | "tracestate") {
                call = call.header(name, value);
            }
        }
        for (name, value) in traced {
            call = call.header(name, value);
        }
        if !req.content_type.is_empty() {
            call = call.header("content-type", req.content_type);
        }
        if !req.body.is_empty() {
            call = call.body(req.body.to_vec());
        }
        let resp = call.send().await.map_err(|e| BackendError(e.to_string()))?;
        let mut resp = resp;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The headers the route passes on, as text (names are lower case).
        let headers = resp
            .headers()
            .iter()
            .filter(|(n, _)| req.response_headers.iter().any(|k| k == n.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let max = self.max_answer;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Ok(too_large(status, max));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| BackendError(format!("reading the answer: {e}")))?
        {
            if body.len() + chunk.len() > max {
                return Ok(too_large(status, max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(BackendResponse {
            status,
            body,
            content_type,
            headers,
        })
    }
}
