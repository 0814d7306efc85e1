//! A webhook receiver on a loopback port that records every delivery.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    /// Statuses to answer with, in order; 200 once empty.
    script: VecDeque<u16>,
    seen: Vec<Delivery>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    /// Answer the next deliveries with these statuses.
    pub fn fail_with(&self, statuses: &[u16]) {
        self.inner
            .lock()
            .expect("lock")
            .script
            .extend(statuses.iter().copied());
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.lock().expect("lock").seen.clone()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut g = inner.lock().expect("lock");
    g.seen.push(Delivery {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let code = g.script.pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}
