//! `GET /status` (local mode): a page an operator reads at a glance during
//! an incident, live. The mode; each breaker group with its error rate,
//! slow-call rate and p95 over the last ten minutes; sync answers vs 202s
//! per second; queue depth and oldest age per lane; the drain rate; the
//! last transitions; a drill in force.
//!
//! Why server-side history: the page must show the last ten minutes the
//! moment it opens (an operator opens it when something is already wrong),
//! so the process samples its `/health` once a second into a ring of
//! [`KEPT`] samples, and `GET /status/stream` sends the ring, then each new
//! sample, as Server-Sent Events. The counts come from the metrics the
//! engine and the worker report anyway ([`Tally`]): nothing is measured
//! twice. The page is one HTML file with its script inline: no build step.

mod page;
mod tally;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use failover_api::AppState;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

pub use page::routes;
pub use tally::Tally;

/// Ten minutes of one sample a second.
pub const KEPT: usize = 600;
const EVERY: Duration = Duration::from_secs(1);

/// The samples kept, and the channel new ones go out on.
pub struct Status {
    state: AppState,
    tally: Arc<Tally>,
    samples: Mutex<VecDeque<Arc<Value>>>,
    live: broadcast::Sender<Arc<Value>>,
}

impl Status {
    pub fn new(state: AppState, tally: Arc<Tally>) -> Self {
        Self {
            state,
            tally,
            samples: Mutex::new(VecDeque::with_capacity(KEPT)),
            live: broadcast::channel(16).0,
        }
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Value>>> {
        // A ring of finished samples: nothing a panicking holder breaks.
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every sample kept, oldest first, and a receiver of the next ones
    /// (taken together, so none falls between).
    pub fn subscribe(&self) -> (Vec<Arc<Value>>, broadcast::Receiver<Arc<Value>>) {
        let samples = self.samples();
        (samples.iter().cloned().collect(), self.live.subscribe())
    }

    /// One sample: `/health` as it is now, with the rates since `last`.
    async fn sample(&self, elapsed: Duration) -> Value {
        let axum::Json(health) = failover_api::health::health(State(self.state.clone())).await;
        let per_s = |n: u64| n as f64 / elapsed.as_secs_f64().max(0.001);
        let counts = self.tally.take();
        json!({
            "t": self.state.engine.deps().clock.now_ms(),
            "mode": health["mode"],
            "breakers": health["breakers"],
            "queue": health["queue"],
            "drills": health["drills"],
            "sync": health["sync"],
            "rates": {
                "sync": per_s(counts.sync),
                "accepted": per_s(counts.accepted),
                "drained": per_s(counts.drained),
            },
            "transitions": self.tally.transitions(),
        })
    }

    /// Samples every second until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep_until(last + EVERY) => {}
            }
            let now = tokio::time::Instant::now();
            let sample = Arc::new(self.sample(now - last).await);
            last = now;
            {
                let mut samples = self.samples();
                if samples.len() == KEPT {
                    samples.pop_front();
                }
                samples.push_back(sample.clone());
            }
            let _ = self.live.send(sample);
        }
    }
}
