//! Deterministic fault exploration: three requests (one that asks for
//! async, one the backend is too slow for, one with an `Idempotency-Key`
//! that the backend fails), then the worker and the sweeper, with a fault
//! at every store, queue, topic and backend call in turn (error, timeout,
//! a write that lands after its timeout, a crash), and in pairs; then faults
//! stop, the client retries what got 503 with its key, the system recovers
//! (redelivery, sweeps past the grace period and the tickets' expiry), and
//! the promise is checked:
//!
//! - a request answered 202 ends in exactly one terminal state, and every
//!   backend call for it carried one downstream `Idempotency-Key`;
//! - a request answered 503 (or not at all) and not retried is never
//!   executed after that answer;
//! - no ticket stays non-terminal, and every notification due was sent
//!   (or visibly exhausted);
//! - every backend call, sync or background, before or after a crash,
//!   carries the trace its client started (each request sends its own
//!   `traceparent`, and a retry the same), and so does each ticket.
//!
//! Paused time makes each schedule exact and fast; both engine modes (a
//! call dropped at the deadline, as on Lambda, and one followed, as in
//! local mode) are explored. The requests go through a routes file of two
//! routes on two backends, so each has its own breaker group. The adapters
//! are the caller's: in memory (every schedule), SQLite, and
//! DynamoDB/SQS/SNS on the emulators (subsets; see [`Scope`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failover_core::breaker::{Breaker, HealthGate, HealthGates, InProcessHealth};
use failover_core::engine::{Answer, Submission, SubmitError};
use failover_core::lane::Lane;
use failover_core::ports::{
    Backend, BackendError, BackendRequest, BackendResponse, Queue, TicketStore, TokioClock,
};
use failover_core::route::RouteTable;
use failover_core::ticket::{Reason, TicketId};
use failover_core::{Deps, Engine, Policy};
use failover_worker::{Notifiers, Worker};
use tokio::time::{advance, timeout, Instant};

use crate::chaos::{guarded, Chaos, Kind, NoWebhooks, Plan, Ports, KINDS};

/// The backend: slow for request 2's first call, 503 for request 3's first
/// call, otherwise a quick 200. Records every call.
#[derive(Default)]
struct Backend3 {
    calls: Mutex<Vec<BackendCall>>,
}

/// When, for which ticket, which body, in which trace.
type BackendCall = (Instant, TicketId, String, Option<[u8; 16]>);

#[async_trait]
impl Backend for Backend3 {
    async fn call(&self, req: BackendRequest<'_>) -> Result<BackendResponse, BackendError> {
        let first = {
            let mut calls = self.calls.lock().expect("calls");
            let body = String::from_utf8_lossy(req.body).into_owned();
            let first = !calls.iter().any(|c| c.2 == body);
            let trace = req.trace.map(|t| t.trace_id);
            calls.push((Instant::now(), *req.ticket_id, body.clone(), trace));
            first
        };
        let (status, after) = match (String::from_utf8_lossy(req.body).as_ref(), first) {
            (BODY_2, true) => (200, Duration::from_secs(10)),
            (BODY_3, true) => (503, Duration::from_millis(5)),
            _ => (200, Duration::from_millis(5)),
        };
        tokio::time::sleep(after).await;
        Ok(BackendResponse {
            status,
            body: b"{}".to_vec(),
            content_type: Some("application/json".into()),
            headers: Vec::new(),
        })
    }
}

/// Two routes on two backends (two breaker groups): requests 1 and 3 take
/// the first, request 2 the second, with a path parameter and a query.
const ROUTES: &str = r#"
[[route]]
name = "pay"
method = "POST"
path = "/payments"
backend = "http://127.0.0.1:9/v1/payments"
forward_headers = ["authorization"]

[[route]]
name = "refund"
method = "POST"
path = "/payments/{id}/refunds"
backend = "http://127.0.0.2:9/v1/payments/{id}/refunds"
"#;

const BODY_1: &str = r#"{"r":1}"#;
const BODY_2: &str = r#"{"r":2}"#;
const BODY_3: &str = r#"{"r":3}"#;

/// The trace each request's client starts: `r` in the last byte.
fn trace_of(body: &str) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[15] = body.as_bytes().get(5).copied().unwrap_or(0);
    id
}

/// The three requests go to three lanes (the worker orders and holds back
/// by them), whose messages carry their priority through every fault; the
/// bulk one arrives before its window (the run starts at 08:00 UTC) and is
/// captured `scheduled`, to run once the window opens five minutes later.
fn lanes() -> Arc<failover_core::lane::Lanes> {
    let mut lanes = failover_core::lane::Lanes::default();
    let rules =
        r#"[{"lane":"critical","pointer":"/r","eq":1},{"lane":"bulk","pointer":"/r","eq":3}]"#;
    lanes.set_rules(rules).expect("rules");
    let windows = r#"{"bulk":["08:05-23:00 UTC"]}"#;
    lanes.set_windows(windows).expect("windows");
    Arc::new(lanes)
}

fn policy() -> Policy {
    Policy {
        lanes: lanes(),
        sync_deadline: Duration::from_secs(3),
        worker_deadline: Duration::from_secs(5),
        ticket_ttl: Duration::from_secs(2 * 3600),
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(4),
        breaker_min_calls: 1000,
        webhook_max_attempts: 4,
        notify_schedule: "1s".parse().expect("schedule"),
        ..Policy::default()
    }
}

/// One process: its ports (dead once crashed), engine and worker.
struct Process<S> {
    ports: Chaos<S>,
    engine: Arc<Engine>,
    worker: Arc<Worker>,
}

struct Run<S> {
    store: S,
    health: Arc<InProcessHealth>,
    plan: Arc<Plan>,
    backend: Arc<Backend3>,
    clock: Arc<TokioClock>,
    follow: bool,
    process: Process<S>,
}

/// The clock every run starts at (the adapters under test take it).
pub fn clock() -> Arc<TokioClock> {
    Arc::new(TokioClock::starting_at(1_800_000_000_000))
}

impl<S: Ports> Run<S> {
    fn new(
        store: S,
        clock: Arc<TokioClock>,
        faults: Vec<(usize, Kind)>,
        follow: bool,
        guard_io: bool,
    ) -> Self {
        let plan = Plan::new(faults, guard_io);
        let backend = Arc::new(Backend3::default());
        let health = Arc::new(InProcessHealth::default());
        let process = Self::start(&store, &health, &plan, &backend, &clock, follow);
        Self {
            store,
            health,
            plan,
            backend,
            clock,
            follow,
            process,
        }
    }

    fn start(
        store: &S,
        health: &Arc<InProcessHealth>,
        plan: &Arc<Plan>,
        backend: &Arc<Backend3>,
        clock: &Arc<TokioClock>,
        follow: bool,
    ) -> Process<S> {
        let policy = Arc::new(policy());
        let routes = Arc::new(RouteTable::parse(ROUTES, "explore", &policy).expect("routes"));
        let ports = Chaos::new(store.clone(), backend.clone(), health.clone(), plan.clone());
        let port = Arc::new(ports.clone());
        let deps = Deps {
            backend: port.clone(),
            tickets: port.clone(),
            idempotency: port.clone(),
            queue: port.clone(),
            // A fleet's gate, over the chaos layer's health store.
            health: Arc::new(HealthGates::new(&routes, |_, p| {
                let shared = Breaker::shared(p, port.clone(), clock.clone(), p.health_cache);
                Arc::new(shared.seeded(17)) as Arc<dyn HealthGate>
            })),
            clock: clock.clone(),
            metrics: Arc::new(failover_core::metrics::LogMetrics),
            routes,
            tracer: Arc::new(failover_core::trace::NoTracer),
        };
        let engine = Engine::new(policy.clone(), deps.clone());
        let notifiers = Notifiers {
            topic: port,
            webhooks: Arc::new(NoWebhooks),
        };
        Process {
            ports,
            engine: Arc::new(if follow { engine.following() } else { engine }),
            worker: Arc::new(Worker::new(policy, deps, notifiers)),
        }
    }

    /// The process, restarted if it crashed.
    fn live(&mut self) -> &Process<S> {
        if self.process.ports.is_dead() {
            let (s, h, p) = (&self.store, &self.health, &self.plan);
            self.process = Self::start(s, h, p, &self.backend, &self.clock, self.follow);
        }
        &self.process
    }

    /// One client request; `None` when it got no answer.
    async fn submit(&mut self, body: &str, key: Option<&str>, async_: bool) -> Outcome {
        let (path, query) = match body {
            BODY_2 => ("/payments/p_2/refunds", Some("dry=1".to_string())),
            _ => ("/payments", None),
        };
        let sub = Submission {
            path: path.into(),
            query,
            headers: vec![
                ("authorization".into(), "Bearer t".into()),
                (
                    "traceparent".into(),
                    format!(
                        "00-{:032x}-00000000000000aa-01",
                        u128::from_be_bytes(trace_of(body))
                    ),
                ),
            ],
            body: body.into(),
            content_type: "application/json".into(),
            request_id: "r".into(),
            idempotency_key: key.map(str::to_string),
            respond_async: async_,
            ..Submission::default()
        };
        let engine = self.live().engine.clone();
        let answered = timeout(Duration::from_secs(30), engine.submit(sub)).await;
        let at = Instant::now();
        match answered {
            Ok(Ok(done)) => match done.answer {
                Answer::Accepted { ticket_id, .. } => Outcome::Accepted(ticket_id),
                Answer::Sync { .. } => Outcome::Answered,
            },
            Ok(Err(SubmitError::Unavailable { .. })) => Outcome::Refused(at),
            Ok(Err(e)) => panic!("unexpected refusal: {e:?}"),
            Err(_) => Outcome::Refused(at),
        }
    }

    /// Works the queue for `secs` seconds: after each empty receive, a
    /// second passes; in recovery (faults stopped), five once the queue has
    /// been empty three times in a row, so that idle stretches cost few
    /// calls on a real store, while every operation up to then is one a
    /// fault can hit.
    async fn work(&mut self, secs: u64) {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut idle = 0;
        while Instant::now() < until {
            let p = self.live();
            let (ports, worker) = (p.ports.clone(), p.worker.clone());
            let lease = worker.lease();
            let got = timeout(
                Duration::from_secs(5),
                ports.receive(10, lease, Duration::ZERO),
            )
            .await;
            let deliveries = match got {
                Ok(Ok(d)) => d,
                _ => Vec::new(),
            };
            if deliveries.is_empty() {
                idle += 1;
                let quiet = idle > 3 && self.plan.faults_stopped();
                advance(Duration::from_secs(if quiet { 5 } else { 1 })).await;
                tokio::task::yield_now().await;
                continue;
            }
            idle = 0;
            for d in deliveries {
                // A handle stuck on a dead or silent port is a worker that
                // died: its message comes back after its visibility.
                let handled = timeout(Duration::from_secs(60), async {
                    let disposition = worker.handle(&d).await;
                    worker.settle(&d, disposition).await;
                })
                .await;
                let _ = handled;
            }
        }
    }

    async fn ticket(&self, id: &TicketId) -> Result<Option<failover_core::ticket::Ticket>, String> {
        let (store, id) = (self.store.clone(), *id);
        let read = async move { TicketStore::get(&store, &id).await };
        guarded(read, self.plan.guard_io)
            .await
            .map_err(|e| e.to_string())
    }

    async fn sweep(&mut self) {
        let worker = self.live().worker.clone();
        let _ = timeout(
            Duration::from_secs(60),
            worker.sweep(failover_worker::sweeper::GRACE),
        )
        .await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted(TicketId),
    Answered,
    /// 503, or no answer at all (at this time).
    Refused(Instant),
}

/// One schedule over `store`; `Err` says which invariant broke.
pub async fn explore<S: Ports>(
    store: S,
    clock: Arc<TokioClock>,
    faults: Vec<(usize, Kind)>,
    follow: bool,
    guard_io: bool,
) -> Result<usize, String> {
    let fault_free = faults.is_empty();
    let mut run = Run::new(store, clock, faults, follow, guard_io);
    let mut outcomes = BTreeMap::new();
    outcomes.insert(BODY_1, run.submit(BODY_1, None, true).await);
    outcomes.insert(BODY_2, run.submit(BODY_2, None, false).await);
    outcomes.insert(BODY_3, run.submit(BODY_3, Some("k3"), false).await);
    run.work(40).await;
    run.sweep().await;
    let ops = run.plan.ops();
    if fault_free {
        // The fleet gate's sampled paths are among the operations faulted.
        let trace = run.plan.trace.lock().expect("trace").clone();
        for path in ["health report", "health view read", "health view publish"] {
            if !trace.contains(&path) {
                return Err(format!("no {path} to fault: {trace:?}"));
            }
        }
        // And the bulk request waits for its window.
        let Outcome::Accepted(id) = outcomes[BODY_3] else {
            return Err(format!("{BODY_3} was not queued: {:?}", outcomes[BODY_3]));
        };
        let t = run
            .ticket(&id)
            .await?
            .ok_or("no ticket for the bulk request")?;
        if (t.reason, t.request.lane) != (Reason::Scheduled, Lane::Bulk) {
            return Err(format!("{BODY_3} not scheduled in its lane: {t:?}"));
        }
    }

    // Recovery: no more faults; the keyed client retries its 503.
    run.plan.stop_faults();
    let retried = matches!(outcomes[BODY_3], Outcome::Refused(_));
    if retried {
        outcomes.insert(BODY_3, run.submit(BODY_3, Some("k3"), false).await);
    }
    run.work(60).await;
    let grace = failover_worker::sweeper::GRACE;
    for _ in 0..2 {
        advance(grace + Duration::from_secs(60)).await;
        run.sweep().await;
        run.work(60).await;
    }
    advance(policy().ticket_ttl).await;
    for _ in 0..2 {
        advance(grace + Duration::from_secs(60)).await;
        run.sweep().await;
        run.work(60).await;
    }

    let calls = run.backend.calls.lock().expect("calls").clone();
    for (body, outcome) in &outcomes {
        let mine: Vec<_> = calls.iter().filter(|c| c.2 == *body).collect();
        if let Some(c) = mine.iter().find(|c| c.3 != Some(trace_of(body))) {
            return Err(format!("{body}: a call outside its trace: {:?}", c.3));
        }
        match outcome {
            Outcome::Accepted(id) => {
                let t = run.ticket(id).await?;
                let t = t.ok_or(format!("{body}: accepted, but no ticket"))?;
                if !t.status.is_terminal() {
                    return Err(format!("{body}: accepted, never finished: {t:?}"));
                }
                if t.request.trace.as_ref().map(|c| c.trace_id) != Some(trace_of(body)) {
                    return Err(format!("{body}: its ticket left its trace: {t:?}"));
                }
                if let Some(c) = mine.iter().find(|c| c.1 != *id) {
                    return Err(format!("{body}: a call under another key {}", c.1));
                }
                if t.due_at().is_some() {
                    return Err(format!("{body}: notification never settled: {t:?}"));
                }
            }
            // A call made before the refusal may still reach the backend
            // after it (the sync attempt; the README says so): the promise
            // is that none is made after it.
            Outcome::Refused(at) if !(retried && *body == BODY_3) => {
                let sent = run.plan.sent.lock().expect("sent").clone();
                if let Some(c) = sent.iter().find(|c| c.1 == *body && c.0 > *at) {
                    return Err(format!("{body}: refused, called again at {:?}", c.0));
                }
            }
            _ => {}
        }
        if *body == BODY_3 && mine.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(format!(
                "{body}: two downstream keys for one Idempotency-Key"
            ));
        }
    }
    let created = run.plan.created.lock().expect("created").clone();
    for id in created {
        let t = run.ticket(&id).await?;
        if let Some(t) = t.filter(|t| !t.status.is_terminal()) {
            return Err(format!("a ticket stayed {:?}: {t:?}", t.status));
        }
    }
    Ok(ops)
}

/// Which schedules to explore: every single fault at every `every`-th
/// operation (all four kinds), each also followed by an error at the next
/// operation, and, with `pairs`, an error followed by an error or a crash
/// at any later operation.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub every: usize,
    pub pairs: bool,
    pub guard_io: bool,
}

/// Explores `scope` in each engine mode of `follow`, each schedule on a
/// fresh back end from `make`, in a runtime of its own (on paused time)
/// that is dropped after it, with whatever it left hanging (a call that
/// never answers, a dead process's tasks); panics with the first broken
/// schedule. Returns the number of schedules explored.
pub fn explore_all<S, F, Fut>(follow: &[bool], scope: Scope, make: F) -> usize
where
    S: Ports,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (S, Arc<TokioClock>)>,
{
    let mut explored = 0;
    for &follow in follow {
        let check = |faults: Vec<(usize, Kind)>| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("a runtime");
            let run = async {
                let (store, clock) = make().await;
                explore(store, clock, faults.clone(), follow, scope.guard_io).await
            };
            match runtime.block_on(run) {
                Ok(ops) => ops,
                Err(broken) => panic!("schedule {faults:?} (follow: {follow}): {broken}"),
            }
        };
        // Without faults: how many operations there are to fault.
        let ops = check(Vec::new());
        explored += 1;
        for at in (0..ops).step_by(scope.every.max(1)) {
            for kind in KINDS {
                check(vec![(at, kind)]);
                explored += 1;
            }
        }
        // A fault, and an error at the very next operation (the capture's
        // undo after a queue write that timed out, say).
        for at in (0..ops).step_by(scope.every.max(1)) {
            for kind in KINDS {
                check(vec![(at, kind), (at + 1, Kind::Error)]);
                explored += 1;
            }
        }
        if !scope.pairs {
            continue;
        }
        for first in 0..ops {
            for second in first + 1..ops {
                for kind in [Kind::Error, Kind::Crash] {
                    check(vec![(first, Kind::Error), (second, kind)]);
                    explored += 1;
                }
            }
        }
    }
    explored
}
