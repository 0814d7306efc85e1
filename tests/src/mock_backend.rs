//! A scriptable backend on a loopback port (zero2prod's mock server, by hand).
//!
//! Each call takes the next scripted behaviour, or the default one, and is
//! recorded with its `Idempotency-Key`, so tests can count how many times the
//! backend really processed a ticket.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answer with this status, body and content type after `delay`.
    Respond {
        status: u16,
        body: Vec<u8>,
        content_type: &'static str,
        delay: Duration,
        /// More response headers.
        headers: Vec<(&'static str, &'static str)>,
    },
    /// Never answer (until the test ends).
    Hang,
}

impl Behaviour {
    pub fn ok(body: &str) -> Self {
        Self::status(200, body)
    }

    pub fn status(status: u16, body: &str) -> Self {
        Self::slow(status, body, Duration::ZERO)
    }

    pub fn slow(status: u16, body: &str, delay: Duration) -> Self {
        Self::Respond {
            status,
            body: body.as_bytes().to_vec(),
            content_type: "application/json",
            delay,
            headers: Vec::new(),
        }
    }

    /// Any bytes, of any content type.
    pub fn bytes(status: u16, body: &[u8], content_type: &'static str, delay: Duration) -> Self {
        Self::Respond {
            status,
            body: body.to_vec(),
            content_type,
            delay,
            headers: Vec::new(),
        }
    }

    /// The same answer with one more response header.
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name, value));
        }
        self
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query, as received.
    pub uri: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    pub body: String,
    /// Whether the backend finished answering (a hung call did not).
    pub answered: bool,
}

struct Inner {
    script: VecDeque<Behaviour>,
    default: Behaviour,
    calls: Vec<Call>,
}

#[derive(Clone)]
pub struct MockBackend {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl MockBackend {
    pub async fn start(default: Behaviour) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script: VecDeque::new(),
            default,
            calls: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let url = format!("http://{}/backend", listener.local_addr().expect("addr"));
        // Any method and path: routes send theirs (`/backend` by default).
        let app = Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    /// `http://127.0.0.1:port`: where routes point their backend URLs.
    pub fn origin(&self) -> String {
        self.url.trim_end_matches("/backend").to_string()
    }

    pub fn set_default(&self, b: Behaviour) {
        self.inner.lock().expect("lock").default = b;
    }

    /// The next calls take these behaviours, in order.
    pub fn push(&self, b: Behaviour) {
        self.inner.lock().expect("lock").script.push_back(b);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().expect("lock").calls.clone()
    }

    /// The `Idempotency-Key` of every call, in order.
    pub fn idempotency_keys(&self) -> Vec<Option<String>> {
        self.calls()
            .into_iter()
            .map(|c| c.idempotency_key)
            .collect()
    }

    /// Calls that finished with an answer, for one idempotency key.
    pub fn answered_for(&self, key: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.answered && c.idempotency_key.as_deref() == Some(key))
            .count()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (behaviour, index) = {
        let mut g = inner.lock().expect("lock");
        let b = g.script.pop_front().unwrap_or_else(|| g.default.clone());
        g.calls.push(Call {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            idempotency_key: header("idempotency-key"),
            request_id: header("x-request-id"),
            body: String::from_utf8_lossy(&body).into_owned(),
            answered: false,
        });
        (b, g.calls.len() - 1)
    };
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Behaviour::Respond {
            status,
            body,
            content_type,
            delay,
            headers,
        } => {
            tokio::time::sleep(delay).await;
            inner.lock().expect("lock").calls[index].answered = true;
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (code, [("content-type", content_type)], body).into_response();
            for (name, value) in headers {
                r.headers_mut()
                    .append(name, axum::http::HeaderValue::from_static(value));
            }
            r
        }
    }
}
