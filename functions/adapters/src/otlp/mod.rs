//! OpenTelemetry export: the core's spans, sent as OTLP over HTTP (JSON).
//!
//! On when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set,
//! with the standard variables ([`Settings::from_env`]); off otherwise, and
//! then nothing is built at all ([`failover_core::trace::NoTracer`]).
//! Hand-written rather than the `opentelemetry` crates: the core records
//! its own few spans (no `tracing` bridge is needed), and the JSON encoding
//! of OTLP is a page, where the SDK would add a protobuf stack to every
//! build.
//!
//! Spans never wait for the network: [`OtlpTracer::record`] puts them in a
//! bounded buffer (`OTEL_BSP_MAX_QUEUE_SIZE`) and a background task sends
//! batches every `OTEL_BSP_SCHEDULE_DELAY` or when a batch is full. When
//! the buffer is full, spans are dropped and counted; a collector that is
//! down costs a warning a minute, not the request path. A Lambda function
//! calls [`failover_core::trace::Tracer::flush`] at the end of each
//! invocation (the process may be frozen after it); local mode at shutdown.

mod encode;
mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use failover_core::trace::{NoTracer, Span, Tracer};
use tokio::sync::{mpsc, oneshot};

pub use settings::Settings;

/// The tracer the environment asks for (`get` reads a variable): the OTLP
/// exporter, started, or [`NoTracer`]. Inside a Tokio runtime.
pub fn tracer(get: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn Tracer>, String> {
    Ok(match Settings::from_env(get)? {
        Some(s) => Arc::new(OtlpTracer::start(s)?),
        None => Arc::new(NoTracer),
    })
}

enum Msg {
    Span(Span),
    Flush(oneshot::Sender<()>),
}

pub struct OtlpTracer {
    tx: mpsc::Sender<Msg>,
    dropped: AtomicU64,
    timeout: Duration,
}

impl OtlpTracer {
    /// Starts the exporter's task (inside a Tokio runtime).
    pub fn start(settings: Settings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .no_proxy()
            .build()
            .map_err(|e| format!("OTLP client: {e}"))?;
        let (tx, rx) = mpsc::channel(settings.max_queue);
        let timeout = settings.timeout;
        tokio::spawn(Exporter::new(client, settings).run(rx));
        Ok(Self {
            tx,
            dropped: AtomicU64::new(0),
            timeout,
        })
    }
}

#[async_trait]
impl Tracer for OtlpTracer {
    fn enabled(&self) -> bool {
        true
    }

    fn record(&self, span: Span) {
        if self.tx.try_send(Msg::Span(span)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "OTLP exporter behind: spans dropped");
            }
        }
    }

    async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        let asked = tokio::time::timeout(self.timeout, async {
            self.tx.send(Msg::Flush(done)).await.ok()?;
            wait.await.ok()
        });
        if !matches!(asked.await, Ok(Some(()))) {
            tracing::warn!("OTLP flush did not finish in time");
        }
    }
}

struct Exporter {
    client: reqwest::Client,
    settings: Settings,
    batch: Vec<Span>,
    /// When an export last failed and was logged (a warning a minute).
    warned: Option<Instant>,
    failed: u64,
}

impl Exporter {
    fn new(client: reqwest::Client, settings: Settings) -> Self {
        Self {
            client,
            settings,
            batch: Vec::new(),
            warned: None,
            failed: 0,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(self.settings.delay);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Span(s)) => {
                        self.batch.push(s);
                        if self.batch.len() >= self.settings.max_batch {
                            self.send().await;
                        }
                    }
                    Some(Msg::Flush(done)) => {
                        self.send().await;
                        let _ = done.send(());
                    }
                    None => {
                        self.send().await;
                        return;
                    }
                },
                _ = tick.tick() => self.send().await,
            }
        }
    }

    async fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.batch);
        let body = encode::request(&self.settings.resource, &spans);
        let mut post = self
            .client
            .post(&self.settings.endpoint)
            .header("content-type", "application/json");
        for (name, value) in &self.settings.headers {
            post = post.header(name, value);
        }
        let error = match post.body(body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => format!("collector answered {}", r.status()),
            Err(e) => e.without_url().to_string(),
        };
        self.failed += spans.len() as u64;
        if self
            .warned
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            self.warned = Some(Instant::now());
            tracing::warn!(%error, spans_lost = self.failed, "OTLP export failed");
        }
    }
}

#[cfg(test)]
mod tests;
