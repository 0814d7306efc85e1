//! # failover-local
//!
//! Local mode: the ONE router, the worker and the embedded SQLite adapters in
//! one process (`cargo run --release`). [`assemble`] wires ports into an
//! engine, a router and a worker; [`serve`] runs them until shutdown. The
//! tests and the benchmark use the same two functions with their own ports
//! (a fault-injecting store, a mock backend), so they exercise exactly what
//! the binary runs.

mod answers;
pub mod config;
pub mod demo;
pub mod run;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use failover_api::{router, AppState};
use failover_core::breaker::board::{BreakerBoard, Tender};
use failover_core::breaker::{Breaker, HealthGate, HealthGates};
use failover_core::changes::{Changes, Watched};
use failover_core::ports::{
    Backend, Clock, EventPublisher, IdempotencyStore, Queue, TicketStore, WebhookSender,
};
use failover_core::{Deps, Engine, Policy};
use failover_worker::{Notifiers, Worker};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Every port the process needs.
#[derive(Clone)]
pub struct Parts {
    pub tickets: Arc<dyn TicketStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub queue: Arc<dyn Queue>,
    pub topic: Arc<dyn EventPublisher>,
    pub backend: Arc<dyn Backend>,
    /// Where requests go (`POST /requests` to `BACKEND_URL` by default).
    pub routes: Arc<failover_core::route::RouteTable>,
    pub webhooks: Arc<dyn WebhookSender>,
    pub clock: Arc<dyn Clock>,
    /// Where the operator's tool starts drills (the SQLite file).
    pub drills: Option<Arc<dyn failover_core::drill::DrillStore>>,
    /// Where the breakers are posted for the tool, and its resets taken.
    pub board: Option<Arc<dyn BreakerBoard>>,
    /// Where spans go (`OTEL_EXPORTER_OTLP_ENDPOINT`; none by default).
    pub tracer: Arc<dyn failover_core::trace::Tracer>,
}

pub struct App {
    pub router: Router,
    pub engine: Arc<Engine>,
    pub worker: Arc<Worker>,
    /// The board and the breakers it shows, tended once per health-cache
    /// period while serving.
    pub board: Option<(Arc<dyn BreakerBoard>, Arc<HealthGates>)>,
    /// The status page's samples, taken once a second while serving.
    pub status: Arc<status::Status>,
}

/// Builds the engine, the router and the worker over one set of ports.
/// The breaker is shared by the API and the worker of this process.
pub fn assemble(policy: Arc<Policy>, parts: Parts) -> App {
    // Logged, and counted for the status page.
    let tally = Arc::new(status::Tally::new(Arc::new(
        failover_core::metrics::LogMetrics,
    )));
    let metrics: Arc<dyn failover_core::metrics::Metrics> = tally.clone();
    let health = HealthGates::new(&parts.routes, |group, policy| {
        let label = parts.routes.group_label(group);
        let breaker = Breaker::new(policy).with_metrics(metrics.clone());
        Arc::new(breaker.for_group(label)) as Arc<dyn HealthGate>
    });
    let health = Arc::new(health);
    let board = parts.board.map(|b| (b, health.clone()));
    // The worker writes in this process: its writes wake event streams.
    let changes = Arc::new(Changes::default());
    let tickets = Arc::new(Watched {
        inner: parts.tickets,
        changes: changes.clone(),
    });
    let deps = Deps {
        backend: parts.backend,
        tickets,
        idempotency: parts.idempotency,
        queue: parts.queue,
        health,
        clock: parts.clock,
        metrics,
        routes: parts.routes,
        tracer: parts.tracer,
    };
    let mut engine = Engine::new(policy.clone(), deps.clone())
        .following()
        .with_changes(changes);
    if let Some(drills) = parts.drills {
        engine = engine.with_drills(drills);
    }
    let engine = Arc::new(engine);
    let notifiers = Notifiers {
        topic: parts.topic,
        webhooks: parts.webhooks,
    };
    let worker = Arc::new(Worker::new(policy, deps, notifiers));
    let state = AppState::new(engine.clone());
    let status = Arc::new(status::Status::new(state.clone(), tally));
    let router = router(state).merge(status::routes(status.clone()));
    App {
        router,
        engine,
        worker,
        board,
        status,
    }
}

/// Serves `router` on `listener` and runs `worker` until `shutdown`
/// resolves; then stops taking requests and messages, and lets the ones in
/// progress finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    worker_concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let App {
        router,
        engine,
        worker,
        board,
        status,
    } = app;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let sweeper = worker.clone();
    let mut sweep_stop = stop_rx.clone();
    tokio::spawn(async move {
        // Every minute, until shutdown: re-enqueue tickets whose message
        // was lost (see `failover_worker::sweeper`).
        loop {
            if let Err(e) = sweeper.sweep(failover_worker::sweeper::GRACE).await {
                tracing::warn!(error = %e, "sweep failed");
            }
            tokio::select! {
                _ = sweep_stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
        }
    });
    tokio::spawn(status.run(stop_rx.clone()));
    if let Some((board, gates)) = board {
        tokio::spawn(tend(
            board,
            gates,
            engine.policy().health_cache,
            stop_rx.clone(),
        ));
    }
    let worker_task = tokio::spawn(worker.run(worker_concurrency, stopped(stop_rx.clone())));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let served = axum::serve(nodelay(listener), router)
        .with_graceful_shutdown(stopped(stop_rx))
        .await;
    if let Err(e) = worker_task.await {
        tracing::error!(error = %e, "worker task failed");
    }
    engine.settle().await;
    engine.deps().tracer.flush().await;
    served
}

/// `listener` with Nagle's algorithm off on every connection: a streamed
/// event (SSE) is a small write after another, which Nagle would hold until
/// the client's delayed ACK (40 ms on Linux).
pub fn nodelay(
    listener: TcpListener,
) -> axum::serve::TapIo<TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// Every `period` until shutdown: takes the tool's breaker resets and
/// posts the breakers (see `failover_core::breaker::board`).
async fn tend(
    board: Arc<dyn BreakerBoard>,
    gates: Arc<HealthGates>,
    period: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let tender = Tender {
        board: board.as_ref(),
        gates: &gates,
    };
    let clock = failover_core::ports::SystemClock;
    let mut seen = None;
    loop {
        let round = match seen {
            None => tender.start().await,
            Some(s) => tender.round(s, failover_core::Clock::now_ms(&clock)).await,
        };
        match round {
            Ok(s) => seen = Some(s),
            Err(e) => tracing::warn!(error = %e, "breaker board not tended"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(period.max(std::time::Duration::from_millis(100))) => {}
        }
    }
}
