//! The protected backend over HTTP: `POST BACKEND_URL`, body unchanged.
//!
//! Shared by local mode and the Lambda functions. It sends the ticket id as
//! `Idempotency-Key` (the backend can deduplicate a sync attempt that timed
//! out and the background attempt that follows) and the request id. It sets
//! no overall timeout of its own: the engine and the worker own the deadline
//! and drop the call when it passes.

use std::time::Duration;

use async_trait::async_trait;
use failover_core::ports::{Backend, BackendError, BackendRequest, BackendResponse};

#[derive(Clone)]
pub struct HttpBackend {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpBackend {
    pub fn new(url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("BACKEND_URL {url:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("BACKEND_URL {url}: must be http or https"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, url })
    }
}

#[async_trait]
impl Backend for HttpBackend {
    async fn call(&self, req: BackendRequest<'_>) -> Result<BackendResponse, BackendError> {
        let resp = self
            .client
            .post(self.url.clone())
            .header("content-type", req.content_type)
            .header("idempotency-key", req.ticket_id.to_string())
            .header("x-request-id", req.request_id)
            .body(req.body.to_string())
            .send()
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .bytes()
            .await
            .map_err(|e| BackendError(format!("reading the answer: {e}")))?;
        Ok(BackendResponse {
            status,
            body: body.to_vec(),
            content_type,
        })
    }
}
