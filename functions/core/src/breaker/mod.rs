//! The circuit breaker: measured backend health decides sync or async.
//!
//! Every sync outcome feeds a sliding window of one-second buckets
//! (`BREAKER_WINDOW_S`). Once it holds `BREAKER_MIN_CALLS` calls, an error
//! rate above `ERROR_RATE_THRESHOLD` or a slow-call rate above
//! `SLOW_RATE_THRESHOLD` opens the breaker: new requests go straight to the
//! queue (`circuit_open`) and wait for nothing. After the open period one probe
//! at a time is let through (half-open); `BREAKER_CLOSE_AFTER` healthy probes
//! in a row close it, a failed probe reopens it for twice as long (capped).
//! The doubling and the consecutive-probe rule are what stop a flapping
//! backend from flipping the mode back and forth.
//!
//! The parts: [`rules`] decide (pure functions of state, window and time),
//! a [`store::HealthStore`] keeps state and window (in process, or in
//! DynamoDB for a fleet of Lambda instances), and [`Breaker`] joins them
//! behind the [`HealthGate`] port the engine and the worker call. Time comes
//! from a [`crate::ports::Clock`], so tests drive it with paused tokio time.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

pub mod board;
mod gate;
mod gates;
mod latency;
pub mod rules;
pub mod store;

pub use gate::Breaker;
pub use gates::HealthGates;
pub use store::{HealthStore, InProcessHealth};

/// What the gate says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: try the backend.
    Sync,
    /// Half-open: this request is the one probe.
    Probe,
    /// Open: go async; the next probe is due in `retry_after`.
    Open { retry_after: Duration },
    /// Closed, but the fleet has more than `SYNC_MAX_INFLIGHT` backend calls
    /// in flight: go async (`overloaded`). Only a fleet-wide gate says this;
    /// within one process the engine counts its own calls exactly.
    Shed,
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// 2xx or 4xx: the backend is working.
    Answered,
    /// 5xx, 429, connection error.
    Error,
    /// The deadline passed (counts as slow and as an error).
    Timeout,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BreakerSnapshot {
    pub state: &'static str,
    /// Whose breaker this is: `process` (local mode), `fleet` (shared by
    /// every instance), or `instance` (a fleet member whose health store is
    /// unreachable, deciding alone).
    pub scope: &'static str,
    pub calls: u32,
    pub error_rate: f64,
    pub slow_rate: f64,
    /// 95th percentile latency of this instance's backend calls in the window.
    pub p95_ms: Option<u64>,
    /// The fleet's backend calls in flight on average over the last complete
    /// seconds (fleet scope only): above `SYNC_MAX_INFLIGHT`, requests are shed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_inflight: Option<f64>,
    /// Milliseconds until the next probe may run, while open.
    pub next_probe_in_ms: Option<u64>,
    pub open_period_ms: u64,
    pub healthy_probes: u32,
    pub transitions: u64,
    /// How long it has been closed since it last recovered (the worker ramps
    /// its drain rate up over this).
    pub closed_for_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
}

/// The port: local mode keeps it in process, AWS mode shares it fleet-wide.
#[async_trait]
pub trait HealthGate: Send + Sync {
    async fn admit(&self) -> Admission;
    /// The same, for a call that cannot judge the backend (the client will
    /// cut it before the policy deadline): it never takes the probe slot.
    async fn admit_without_probe(&self) -> Admission;
    async fn record(&self, admission: Admission, outcome: CallOutcome, latency: Duration);
    /// An admission given back without a call: a probe frees its slot at
    /// once (rather than holding it until it times out).
    async fn release(&self, admission: Admission);
    async fn snapshot(&self) -> BreakerSnapshot;
    /// How long since the breaker closed after an outage (`None` if it is
    /// not closed, or never opened): the worker's drain ramps up over it.
    async fn closed_for(&self) -> Option<Duration>;
    /// Closes the breaker on a fresh window, whatever its state: the
    /// operator's `breaker reset`. Where it is shared, for every instance.
    async fn reset(&self) -> Result<(), crate::ports::StoreError>;
}

#[cfg(test)]
mod sampled_tests;
#[cfg(test)]
mod tests;
