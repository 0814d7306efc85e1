//! Routes through the engine: what reaches each backend is exactly the
//! route's method and URL (path parameters, query), the headers it lists and
//! the body's bytes, on the sync path and when the worker replays a ticket;
//! each route has its own deadline; unknown paths, methods and media types
//! are refused before anything is stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failover_adapters::memory::MemoryStore;
use failover_core::breaker::{Breaker, HealthGate, HealthGates};
use failover_core::engine::{Answer, Submission, SubmitError};
use failover_core::metrics::Metric;
use failover_core::ports::{
    Backend, BackendError, BackendRequest, BackendResponse, TicketStore, TokioClock,
};
use failover_core::route::RouteTable;
use failover_core::ticket::{Reason, Status};
use failover_core::{Deps, Engine, Policy};
use failover_worker::{Notifiers, Worker};

use crate::scripted::NoWebhooks;

const ROUTES: &str = r#"
[[route]]
name = "create-payment"
method = "POST"
path = "/payments"
backend = "http://127.0.0.1:9000/v1/payments"
forward_headers = ["authorization"]

[[route]]
name = "order-status"
method = "GET"
path = "/orders/{id}"
backend = "http://127.0.0.1:9100/orders/{id}"
deadline_ms = 800
content_types = ["text/plain"]
sync_max_inflight = 1
"#;

/// What a backend call carried.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Answers at once, except the orders backend, which takes 1 s.
#[derive(Default)]
struct Recording(Mutex<Vec<Seen>>);

#[async_trait]
impl Backend for Recording {
    async fn call(&self, req: BackendRequest<'_>) -> Result<BackendResponse, BackendError> {
        self.0.lock().expect("calls").push(Seen {
            method: req.method.into(),
            url: req.url.into(),
            headers: req.headers.to_vec(),
            body: req.body.to_vec(),
        });
        if req.url.contains(":9100/") {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(BackendResponse {
            status: 200,
            body: b"{}".to_vec(),
            content_type: Some("application/json".into()),
            headers: Vec::new(),
        })
    }
}

/// Every metric reported.
#[derive(Default)]
struct Metrics(Mutex<Vec<Metric>>);

impl failover_core::metrics::Metrics for Metrics {
    fn record(&self, metric: Metric) {
        self.0.lock().expect("metrics").push(metric);
    }
}

struct Setup {
    engine: Arc<Engine>,
    worker: Arc<Worker>,
    store: MemoryStore,
    backend: Arc<Recording>,
    metrics: Arc<Metrics>,
}

fn setup() -> Setup {
    let clock = Arc::new(TokioClock::starting_at(1_800_000_000_000));
    let store = MemoryStore::new(clock.clone());
    let backend = Arc::new(Recording::default());
    let policy = Arc::new(Policy {
        breaker_min_calls: 2,
        ..Policy::default()
    });
    let routes = RouteTable::parse(ROUTES, "routes.toml", &policy).expect("routes");
    let metrics = Arc::new(Metrics::default());
    let deps = Deps {
        backend: backend.clone(),
        tickets: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        queue: Arc::new(store.clone()),
        health: Arc::new(HealthGates::new(&routes, |group, p| {
            let breaker = Breaker::new(p).with_metrics(metrics.clone());
            Arc::new(breaker.for_group(group)) as Arc<dyn HealthGate>
        })),
        clock,
        metrics: metrics.clone(),
        routes: Arc::new(routes),
        tracer: Arc::new(failover_core::trace::NoTracer),
    };
    let notifiers = Notifiers {
        topic: Arc::new(store.clone()),
        webhooks: Arc::new(NoWebhooks),
    };
    Setup {
        engine: Arc::new(Engine::new(policy.clone(), deps.clone())),
        worker: Arc::new(Worker::new(policy, deps, notifiers)),
        store,
        backend,
        metrics,
    }
}

fn payment() -> Submission {
    Submission {
        method: "POST".into(),
        path: "/payments".into(),
        headers: vec![
            ("authorization".into(), "Bearer t".into()),
            ("cookie".into(), "session=secret".into()),
        ],
        body: vec![b'{', 0xff, b'}'],
        content_type: "application/json".into(),
        request_id: "r".into(),
        ..Submission::default()
    }
}

fn order() -> Submission {
    Submission {
        method: "GET".into(),
        path: "/orders/o%2F42".into(),
        query: Some("fields=status&x=1".into()),
        headers: vec![("authorization".into(), "Bearer t".into())],
        ..Submission::default()
    }
}

#[tokio::test(start_paused = true)]
async fn each_backend_gets_exactly_its_route_and_the_worker_replays_it() {
    let s = setup();
    let done = s.engine.submit(payment()).await.expect("answered");
    assert!(matches!(done.answer, Answer::Sync { status: 200, .. }));
    let paid = Seen {
        method: "POST".into(),
        url: "http://127.0.0.1:9000/v1/payments".into(),
        headers: vec![("authorization".into(), "Bearer t".into())],
        body: vec![b'{', 0xff, b'}'],
    };
    assert_eq!(s.backend.0.lock().unwrap().clone(), [paid], "no cookie");

    // The orders route's own deadline (800 ms) sends a 1 s call async.
    let done = s.engine.submit(order()).await.expect("answered");
    let Answer::Accepted {
        ticket_id, reason, ..
    } = done.answer
    else {
        panic!("not accepted: {:?}", done.answer);
    };
    assert_eq!(reason, Reason::Timeout);
    let t = s.store.get(&ticket_id).await.unwrap().unwrap();
    assert_eq!(t.request.route, "order-status");
    let asked = Seen {
        method: "GET".into(),
        url: "http://127.0.0.1:9100/orders/o%2F42?fields=status&x=1".into(),
        headers: vec![],
        body: vec![],
    };
    // The worker replays the same request.
    let handled = s.worker.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(handled.run(2, async move {
        let _ = stopped.await;
    }));
    for _ in 0..100 {
        let t = s.store.get(&ticket_id).await.unwrap().unwrap();
        if t.status == Status::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    let _ = run.await;
    let t = s.store.get(&ticket_id).await.unwrap().unwrap();
    assert_eq!(t.status, Status::Succeeded);
    let calls = s.backend.0.lock().unwrap().clone();
    assert_eq!(
        calls[1..],
        [asked.clone(), asked],
        "sync attempt, then the replay"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_paths_methods_and_media_types_are_refused_before_anything_is_kept() {
    let s = setup();
    let refused = |sub: Submission| {
        let engine = s.engine.clone();
        async move { engine.submit(sub).await.expect_err("refused") }
    };
    let nowhere = Submission {
        path: "/refunds".into(),
        ..payment()
    };
    assert_eq!(refused(nowhere).await, SubmitError::NotFound);
    let wrong_method = Submission {
        method: "DELETE".into(),
        ..order()
    };
    assert_eq!(
        refused(wrong_method).await,
        SubmitError::MethodNotAllowed {
            allow: vec!["GET".into()]
        }
    );
    let text = Submission {
        content_type: "text/plain".into(),
        ..payment()
    };
    assert_eq!(
        refused(text).await,
        SubmitError::UnsupportedMediaType {
            accepted: vec!["application/json".into()]
        }
    );
    // The old door is closed when a routes file is in use.
    let legacy = Submission {
        body: b"{}".to_vec(),
        content_type: "application/json".into(),
        ..Submission::default()
    };
    assert_eq!(refused(legacy).await, SubmitError::NotFound);
    assert!(s.backend.0.lock().unwrap().is_empty());
    assert!(s.store.ticket_ids().is_empty());
}

/// The same Idempotency-Key and body on two routes are two requests.
#[tokio::test(start_paused = true)]
async fn a_key_names_one_operation() {
    let s = setup();
    let keyed = |sub: Submission| Submission {
        idempotency_key: Some("k".into()),
        respond_async: true,
        body: b"{}".to_vec(),
        content_type: "application/json".into(),
        ..sub
    };
    s.engine.submit(keyed(payment())).await.expect("accepted");
    let other_route = Submission {
        path: "/orders/1".into(),
        method: "GET".into(),
        content_type: "text/plain".into(),
        ..keyed(order())
    };
    assert_eq!(
        s.engine.submit(other_route).await.expect_err("refused"),
        SubmitError::KeyReused
    );
}

/// Metrics say which route answered or failed over, and which group's
/// breaker moved.
#[tokio::test(start_paused = true)]
async fn metrics_name_the_route_and_the_breaker_group() {
    let s = setup();
    s.engine.submit(payment()).await.expect("answered");
    for _ in 0..2 {
        s.engine.submit(order()).await.expect("accepted");
    }
    let seen = s.metrics.0.lock().unwrap().clone();
    assert!(seen.iter().any(|m| matches!(m,
        Metric::SyncAnswered { route, .. } if route == "create-payment")));
    assert!(seen.iter().any(|m| matches!(m,
        Metric::Failover { reason: "timeout", route, .. } if route == "order-status")));
    assert!(seen.iter().any(|m| matches!(m,
        Metric::BreakerTransition { to: "open", group } if group == "http://127.0.0.1:9100")));
    assert!(!seen.iter().any(|m| matches!(m,
        Metric::BreakerTransition { group, .. } if group == "http://127.0.0.1:9000")));
}

/// A route's in-flight limit is its own: one order lookup in flight fills
/// the orders route (the next goes async, `overloaded`), while payments
/// still answer.
#[tokio::test(start_paused = true)]
async fn each_route_has_its_own_in_flight_limit() {
    let s = setup();
    let first = tokio::spawn({
        let engine = s.engine.clone();
        async move { engine.submit(order()).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(s.engine.sync_inflight(), 1);
    let second = s.engine.submit(order()).await.expect("accepted");
    assert!(
        matches!(
            second.answer,
            Answer::Accepted {
                reason: Reason::Overloaded,
                ..
            }
        ),
        "{second:?}"
    );
    let paid = s.engine.submit(payment()).await.expect("answered");
    assert!(matches!(paid.answer, Answer::Sync { status: 200, .. }));
    let first = first.await.expect("joined").expect("accepted");
    assert!(matches!(
        first.answer,
        Answer::Accepted {
            reason: Reason::Timeout,
            ..
        }
    ));
}

/// A ticket whose route is no longer configured fails at once as
/// `unroutable`, without a backend call or a retry.
#[tokio::test(start_paused = true)]
async fn a_ticket_whose_route_was_removed_fails_at_once() {
    use failover_core::message::QueueMessage;
    use failover_core::ports::Queue;
    use failover_core::ticket::{CapturedRequest, ErrorKind, Ticket, TicketId};
    let s = setup();
    let request = CapturedRequest {
        route: "gone".into(),
        ..CapturedRequest::new("{}", "application/json", "r")
    };
    let now = failover_core::ports::Clock::now_ms(&TokioClock::starting_at(1_800_000_000_000));
    let ticket = Ticket::new(TicketId::new(), Reason::Timeout, request, now, 3_600_000);
    s.store.create(&ticket).await.unwrap();
    let body = QueueMessage::new(ticket.id).to_body();
    let priority = failover_core::ports::Priority::normal(now);
    s.store.send(&body, priority, Duration::ZERO).await.unwrap();
    let got = s
        .store
        .receive(1, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    let disposition = s.worker.handle(&got[0]).await;
    s.worker.settle(&got[0], disposition).await;
    let t = s.store.get(&ticket.id).await.unwrap().unwrap();
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.error.map(|e| e.kind), Some(ErrorKind::Unroutable));
    assert!(s.backend.0.lock().unwrap().is_empty());
}

/// A host copies only the headers the engine reads: those a route
/// forwards, the lane's and the trace context's.
#[tokio::test]
async fn the_engine_names_the_headers_it_reads() {
    let s = setup();
    for name in [
        "authorization",
        "traceparent",
        "tracestate",
        "failover-lane",
    ] {
        assert!(s.engine.reads_header(name), "{name}");
    }
    for name in ["cookie", "host", "content-length", "x-forwarded-for"] {
        assert!(!s.engine.reads_header(name), "{name}");
    }
}
