//! An OTLP/HTTP receiver on a loopback port: it takes what an exporter
//! posts to `/v1/traces` (JSON) and keeps it; [`OtlpReceiver::spans`]
//! decodes. Decoding waits until asked, so that the benchmark's load does
//! not share the machine with it (a collector runs elsewhere).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent: Option<String>,
    pub name: String,
    pub kind: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: HashMap<String, Value>,
    /// 2: error.
    pub status: u64,
    /// The resource's `service.name`.
    pub service: String,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<String> {
        let v = self.attributes.get(key)?;
        v.get("stringValue")
            .or_else(|| v.get("intValue"))
            .or_else(|| v.get("boolValue"))
            .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
    }
}

#[derive(Clone, Default)]
pub struct OtlpReceiver {
    pub url: String,
    /// Each export request's body, as it came.
    posts: Arc<Mutex<Vec<Bytes>>>,
}

fn num(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
        .unwrap_or(0)
}

fn decode(body: &Value) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    let none = Vec::new();
    for rs in body["resourceSpans"].as_array().unwrap_or(&none) {
        let service = rs["resource"]["attributes"]
            .as_array()
            .unwrap_or(&none)
            .iter()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        for ss in rs["scopeSpans"].as_array().unwrap_or(&none) {
            for s in ss["spans"].as_array().unwrap_or(&none) {
                let attributes = s["attributes"]
                    .as_array()
                    .unwrap_or(&none)
                    .iter()
                    .filter_map(|a| Some((a["key"].as_str()?.to_string(), a["value"].clone())))
                    .collect();
                out.push(ReceivedSpan {
                    trace_id: s["traceId"].as_str().unwrap_or_default().into(),
                    span_id: s["spanId"].as_str().unwrap_or_default().into(),
                    parent: s["parentSpanId"].as_str().map(str::to_string),
                    name: s["name"].as_str().unwrap_or_default().into(),
                    kind: s["kind"].as_u64().unwrap_or(0),
                    start_ns: num(&s["startTimeUnixNano"]),
                    end_ns: num(&s["endTimeUnixNano"]),
                    attributes,
                    status: s["status"]["code"].as_u64().unwrap_or(0),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

async fn take(State(r): State<OtlpReceiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    r.posts.lock().expect("lock").push(body);
    StatusCode::OK
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let r = OtlpReceiver {
            url: format!("http://{}", listener.local_addr().expect("addr")),
            ..Default::default()
        };
        let app = Router::new()
            .route("/v1/traces", post(take))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    /// Every span received so far; a body that is not an export request
    /// fails the test.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let posts = self.posts.lock().expect("lock").clone();
        posts
            .iter()
            .flat_map(|body| {
                let json: Value = serde_json::from_slice(body).expect("an OTLP JSON body");
                let spans = decode(&json);
                assert!(!spans.is_empty(), "an export request without spans: {json}");
                spans
            })
            .collect()
    }

    /// How many export requests came.
    pub fn posts(&self) -> usize {
        self.posts.lock().expect("lock").len()
    }

    /// Waits (up to `within`) until `done` holds of the spans; returns them.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || tokio::time::Instant::now() >= until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
