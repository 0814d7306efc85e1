//! Engine and worker logic on tokio's paused clock: deadlines, breaker and
//! backoff are checked to the millisecond without a single real sleep.
//! In-memory ports (no blocking I/O, which would let paused time jump).

mod abuse;
mod cancel;
mod explore;
mod fleet_sim;
mod lanes;
mod notices;
mod outage;
mod polls;
mod routes;
mod scripted;

use std::sync::Arc;
use std::time::Duration;

use failover_adapters::fault::{Faults, Faulty};
use failover_adapters::memory::MemoryStore;
use failover_core::breaker::{Breaker, HealthGate, HealthGates};
use failover_core::engine::{Answer, Submission, SubmitError};
use failover_core::ports::{Queue, TicketStore, TokioClock};
use failover_core::ticket::{Reason, Status};
use failover_core::{Deps, Engine, Policy};
use failover_worker::{Notifiers, Worker};
use scripted::{Scripted, Step};
use tokio::time::{advance, Instant};

struct World {
    engine: Arc<Engine>,
    worker: Arc<Worker>,
    store: MemoryStore,
    backend: Arc<Scripted>,
    faults: Faults,
}

fn policy() -> Policy {
    Policy {
        sync_deadline: Duration::from_secs(3),
        slow_call: Duration::from_secs(3),
        breaker_min_calls: 4,
        breaker_open: Duration::from_secs(5),
        breaker_close_after: 3,
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(60),
        ..Policy::default()
    }
}

/// As on Lambda: a call the client stops waiting for is dropped.
fn world(policy: Policy, default: Step) -> World {
    world_with(policy, default, false)
}

/// As in local mode: such a call keeps running and completes its ticket.
fn following(policy: Policy, default: Step) -> World {
    world_with(policy, default, true)
}

fn world_with(policy: Policy, default: Step, follow: bool) -> World {
    let clock = Arc::new(TokioClock::starting_at(1_800_000_000_000));
    let store = MemoryStore::new(clock.clone()).with_lane_ageing(policy.lanes.ageing);
    let faults = Faults::default();
    let faulty = Arc::new(Faulty::new(store.clone(), faults.clone()));
    let backend = Arc::new(Scripted::new(default));
    let policy = Arc::new(policy);
    let health: Arc<dyn HealthGate> = Arc::new(Breaker::new(&policy));
    let deps = Deps {
        backend: backend.clone(),
        tickets: faulty.clone(),
        idempotency: faulty.clone(),
        queue: faulty,
        health: Arc::new(HealthGates::single(health)),
        clock,
        metrics: Arc::new(failover_core::metrics::LogMetrics),
        routes: Arc::new(
            failover_core::route::RouteTable::single("http://127.0.0.1:9/", policy.clone())
                .expect("a route"),
        ),
        tracer: Arc::new(failover_core::trace::NoTracer),
    };
    let notifiers = Notifiers {
        topic: Arc::new(store.clone()),
        webhooks: Arc::new(scripted::NoWebhooks),
    };
    World {
        engine: Arc::new(match follow {
            true => Engine::new(policy.clone(), deps.clone()).following(),
            false => Engine::new(policy.clone(), deps.clone()),
        }),
        worker: Arc::new(Worker::new(policy, deps, notifiers)),
        store,
        backend,
        faults,
    }
}

impl World {
    /// A request accepted for async processing; its ticket id.
    async fn accept(&self) -> failover_core::ticket::TicketId {
        let done = self
            .engine
            .submit(Submission {
                respond_async: true,
                ..sub()
            })
            .await
            .unwrap();
        match done.answer {
            Answer::Accepted { ticket_id, .. } => ticket_id,
            other => panic!("not accepted: {other:?}"),
        }
    }

    /// Runs the worker until the ticket is terminal (at most `limit` of
    /// paused time), then stops it.
    async fn work_until_terminal(
        &self,
        id: failover_core::ticket::TicketId,
        limit: Duration,
    ) -> failover_core::ticket::Ticket {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(self.worker.clone().run(4, async move {
            let _ = stopped.await;
        }));
        let deadline = Instant::now() + limit;
        let t = loop {
            let t = self.store.get(&id).await.unwrap().unwrap();
            if t.status.is_terminal() {
                break t;
            }
            assert!(Instant::now() < deadline, "never finished: {t:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let _ = stop.send(());
        let _ = run.await;
        t
    }
}

/// Runs the worker for `span` of paused time. Once stopped, a worker starts
/// no more backend calls: a test that needs it again runs it throughout.
async fn work_for(w: &World, span: Duration) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(span).await;
    let _ = stop.send(());
    let _ = run.await;
}

fn sub() -> Submission {
    Submission {
        body: r#"{"amount":1}"#.into(),
        content_type: "application/json".into(),
        request_id: "r".into(),
        ..Submission::default()
    }
}

/// A ticket for `sub()` as a capture writes it at `now` (one hour to live),
/// for tests that set up what a capture or a worker left behind.
fn written(id: failover_core::ticket::TicketId, now: i64) -> failover_core::ticket::Ticket {
    let req = failover_core::ticket::CapturedRequest::new(sub().body, "application/json", "r");
    failover_core::ticket::Ticket::new(id, Reason::Timeout, req, now, 3_600_000)
}

fn reason(a: &Answer) -> Option<Reason> {
    match a {
        Answer::Accepted { reason, .. } => Some(*reason),
        Answer::Sync { .. } => None,
    }
}

#[tokio::test(start_paused = true)]
async fn failover_happens_exactly_at_the_deadline() {
    let w = world(policy(), Step::Answer(200, Duration::from_secs(10)));
    let started = Instant::now();
    let done = w.engine.submit(sub()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(reason(&done.answer), Some(Reason::Timeout));
    let s = w.store.stats().await.unwrap();
    assert_eq!(s.visible, 1, "the message is queued");
}

#[tokio::test(start_paused = true)]
async fn an_answer_just_inside_the_deadline_is_sync() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(2999)));
    let done = w.engine.submit(sub()).await.unwrap();
    assert!(matches!(done.answer, Answer::Sync { status: 200, .. }));
    assert_eq!(w.store.stats().await.unwrap().visible, 0);
}

#[tokio::test(start_paused = true)]
async fn prefer_wait_and_the_host_cap_shorten_the_deadline() {
    let w = world(policy(), Step::Answer(200, Duration::from_secs(10)));
    let started = Instant::now();
    let done = w
        .engine
        .submit(Submission {
            wait: Some(Duration::from_secs(1)),
            ..sub()
        })
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(done.applied, vec!["wait=1".to_string()]);

    let started = Instant::now();
    w.engine
        .submit(Submission {
            deadline_cap: Some(Duration::from_millis(700)),
            ..sub()
        })
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(700));

    // wait=0: no sync attempt at all.
    let calls = w.backend.calls().len();
    let started = Instant::now();
    let done = w
        .engine
        .submit(Submission {
            wait: Some(Duration::ZERO),
            ..sub()
        })
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(reason(&done.answer), Some(Reason::Timeout));
    assert_eq!(w.backend.calls().len(), calls);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_fails_over_without_waiting_then_recovers_by_itself() {
    let w = world(policy(), Step::Answer(503, Duration::from_millis(10)));
    for _ in 0..4 {
        let d = w.engine.submit(sub()).await.unwrap();
        assert_eq!(reason(&d.answer), Some(Reason::BackendError));
    }
    // Open: straight to the queue, no backend call, no wait.
    let calls = w.backend.calls().len();
    let started = Instant::now();
    let d = w.engine.submit(sub()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(reason(&d.answer), Some(Reason::CircuitOpen));
    assert!(matches!(
        d.answer,
        Answer::Accepted {
            retry_after_s: 5,
            ..
        }
    ));
    assert_eq!(w.backend.calls().len(), calls);

    // The backend recovers; nobody touches anything.
    w.backend
        .set_default(Step::Answer(200, Duration::from_millis(10)));
    advance(Duration::from_secs(5)).await;
    for _ in 0..3 {
        let d = w.engine.submit(sub()).await.unwrap();
        assert!(matches!(d.answer, Answer::Sync { .. }), "probe answered");
    }
    let h = w.engine.deps().health.gate("").snapshot().await;
    assert_eq!(h.state, "closed");
    let d = w.engine.submit(sub()).await.unwrap();
    assert!(matches!(d.answer, Answer::Sync { .. }));
}

#[tokio::test(start_paused = true)]
async fn the_worker_backs_off_exponentially_then_succeeds() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    for _ in 0..3 {
        w.backend.push(Step::Answer(503, Duration::from_millis(5)));
    }
    let ticket_id = w.accept().await;
    let t = w
        .work_until_terminal(ticket_id, Duration::from_secs(120))
        .await;
    assert_eq!((t.status, t.attempts), (Status::Succeeded, 4));
    // Gaps between attempts: equal jitter keeps each in [d/2, d] for
    // d = 1 s, 2 s, 4 s (plus the 50 ms queue poll).
    let at = w.backend.calls();
    assert_eq!(at.len(), 4);
    for (i, pair) in at.windows(2).enumerate() {
        let full = Duration::from_secs(1 << i);
        let gap = pair[1] - pair[0];
        assert!(gap >= full / 2, "gap {i}: {gap:?}");
        assert!(gap <= full + Duration::from_millis(200), "gap {i}: {gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_capture_leaves_nothing_behind() {
    let w = world(policy(), Step::Answer(503, Duration::ZERO));
    Faults::set(&w.faults.queue_send, true);
    let err = w.engine.submit(sub()).await.unwrap_err();
    assert!(matches!(err, SubmitError::Unavailable { .. }), "{err:?}");
    Faults::set(&w.faults.queue_send, false);
    assert_eq!(w.store.stats().await.unwrap().visible, 0);
    // The ticket written before the queue failed is gone again.
    let id = w.backend.keys()[0];
    assert_eq!(
        w.store.get(&id).await.unwrap(),
        None,
        "the ticket is undone"
    );

    // A stalled store and queue: the capture budget answers.
    w.faults
        .latency_ms
        .store(60_000, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let err = w.engine.submit(sub()).await.unwrap_err();
    assert!(matches!(err, SubmitError::Unavailable { .. }));
    // The sync attempt (3 s), then two budgets at most: the write that
    // stalled and its undo.
    assert!(started.elapsed() <= Duration::from_secs(3) + Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_idempotency_key_is_taken_over_after_its_lease() {
    use failover_core::ports::{IdemOutcome, IdemRecord, IdempotencyStore};
    use failover_core::ticket::TicketId;
    let w = world(policy(), Step::Answer(503, Duration::from_millis(5)));
    // A first call died mid-capture: its in-flight record names the ticket
    // it had already written; the message was never sent.
    let dead = TicketId::new();
    let now = w.engine.deps().clock.now_ms();
    IdempotencyStore::insert(
        &w.store,
        &IdemRecord {
            key: "k".into(),
            fingerprint: failover_core::idempotency::fingerprint(&sub().body),
            version: 1,
            outcome: IdemOutcome::InFlight {
                lease_until: now + 10_000,
                ticket_id: dead,
            },
            expires_at: now + 100_000_000,
        },
    )
    .await
    .unwrap();
    w.store.create(&written(dead, now)).await.unwrap();
    let keyed = || Submission {
        idempotency_key: Some("k".into()),
        ..sub()
    };
    let err = w.engine.submit(keyed()).await.unwrap_err();
    assert_eq!(err, SubmitError::InFlight { retry_after_s: 10 });
    advance(Duration::from_secs(10)).await;
    // The retry takes over under the same ticket id: it finishes the dead
    // call's capture instead of making a second ticket.
    let done = w.engine.submit(keyed()).await.unwrap();
    let Answer::Accepted { ticket_id, .. } = done.answer else {
        panic!("accepted expected: {done:?}")
    };
    assert_eq!(ticket_id, dead);
    assert!(!done.replayed);
    assert_eq!(
        w.store.stats().await.unwrap().visible,
        1,
        "its message is queued now"
    );
    // Once finished, the key replays that same ticket.
    let again = w.engine.submit(keyed()).await.unwrap();
    assert!(again.replayed);
    assert!(matches!(again.answer, Answer::Accepted { ticket_id, .. } if ticket_id == dead));
}

#[tokio::test(start_paused = true)]
async fn a_ticket_past_its_ttl_fails_as_expired() {
    let p = Policy {
        ticket_ttl: Duration::from_secs(10),
        max_attempts: 100,
        retry_base: Duration::from_secs(4),
        retry_max: Duration::from_secs(4),
        ..policy()
    };
    let w = world(p, Step::Answer(503, Duration::from_millis(5)));
    let ticket_id = w.accept().await;
    let t = w
        .work_until_terminal(ticket_id, Duration::from_secs(60))
        .await;
    assert_eq!(t.status, Status::Failed);
    let error = t.error.unwrap();
    assert_eq!(error.kind, failover_core::ticket::ErrorKind::Expired);
    // Attempts ran every 2-4 s until the 10 s TTL: a handful, not 100.
    assert!((2..=6).contains(&t.attempts), "{} attempts", t.attempts);
    // The last backend answer is kept, and the topic heard about it.
    assert_eq!(t.result.unwrap().status_code, 503);
    assert_eq!(w.store.published().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_re_enqueues_a_ticket_whose_message_was_lost() {
    use failover_core::ticket::TicketId;
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    // A ticket a worker had deferred, whose message was then lost.
    let now = w.engine.deps().clock.now_ms();
    let orphan = written(TicketId::new(), now).postpone(now, now).unwrap();
    w.store.create(&orphan).await.unwrap();
    let grace = failover_worker::sweeper::GRACE;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 0, "not overdue yet");
    advance(grace + Duration::from_secs(1)).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 1);
    let t = w
        .work_until_terminal(orphan.id, Duration::from_secs(30))
        .await;
    assert_eq!(t.status, Status::Succeeded);
    assert_eq!(
        w.worker.sweep(grace).await.unwrap(),
        0,
        "terminal: nothing to sweep"
    );
}
