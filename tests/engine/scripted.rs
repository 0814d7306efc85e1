//! An in-process backend that follows a script on tokio's clock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use failover_core::ports::{Backend, BackendError, BackendRequest, BackendResponse};
use failover_core::ticket::TicketId;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Answer with this status after this long.
    Answer(u16, Duration),
}

pub struct Scripted {
    script: Mutex<VecDeque<Step>>,
    default: Mutex<Step>,
    calls: Mutex<Vec<Instant>>,
    keys: Mutex<Vec<TicketId>>,
}

impl Scripted {
    pub fn new(default: Step) -> Self {
        Self {
            script: Mutex::default(),
            default: Mutex::new(default),
            calls: Mutex::default(),
            keys: Mutex::default(),
        }
    }

    pub fn push(&self, s: Step) {
        self.script.lock().unwrap().push_back(s);
    }

    pub fn set_default(&self, s: Step) {
        *self.default.lock().unwrap() = s;
    }

    /// The downstream `Idempotency-Key` of each call, in order.
    pub fn keys(&self) -> Vec<TicketId> {
        self.keys.lock().unwrap().clone()
    }

    /// When each call started.
    pub fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Backend for Scripted {
    async fn call(&self, req: BackendRequest<'_>) -> Result<BackendResponse, BackendError> {
        self.calls.lock().unwrap().push(Instant::now());
        self.keys.lock().unwrap().push(*req.ticket_id);
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(*self.default.lock().unwrap());
        let Step::Answer(status, after) = step;
        tokio::time::sleep(after).await;
        Ok(BackendResponse {
            status,
            body: b"{}".to_vec(),
            content_type: Some("application/json".into()),
            headers: Vec::new(),
        })
    }
}

pub use failover_tests::chaos::NoWebhooks;
