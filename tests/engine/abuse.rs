//! The promise under a hostile client and a dependency down at the wrong
//! moment: a client's own short wait never counts against the backend, a
//! slow call is not made twice, a 503 keeps the downstream key, and a
//! capture is never cut half way or revived behind the client's back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use failover_adapters::fault::Faults;
use failover_core::engine::{Answer, Submission, SubmitError};
use failover_core::ports::{Queue, TicketStore};
use failover_core::ticket::{ErrorKind, Reason, Status, TicketId};
use tokio::time::{advance, Instant};

use crate::scripted::Step;
use crate::{following, policy, reason, sub, world, written, World};

fn wait(secs: u64) -> Submission {
    Submission {
        wait: Some(Duration::from_secs(secs)),
        ..sub()
    }
}

fn accepted(a: &Answer) -> TicketId {
    match a {
        Answer::Accepted { ticket_id, .. } => *ticket_id,
        other => panic!("not accepted: {other:?}"),
    }
}

async fn breaker(w: &World) -> failover_core::breaker::BreakerSnapshot {
    w.engine.deps().health.gate("").snapshot().await
}

/// Opens the breaker with four quick 503s; the probe is due after 5 s.
async fn open(w: &World) {
    for _ in 0..4 {
        w.backend.push(Step::Answer(503, Duration::from_millis(5)));
        w.engine.submit(sub()).await.unwrap();
    }
    assert_eq!(breaker(w).await.state, "open");
}

#[tokio::test(start_paused = true)]
async fn wait_zero_calls_nothing_and_counts_nothing() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    for _ in 0..30 {
        let done = w.engine.submit(wait(0)).await.unwrap();
        assert_eq!(reason(&done.answer), Some(Reason::Timeout));
    }
    assert!(w.backend.calls().is_empty());
    let b = breaker(&w).await;
    assert_eq!((b.state, b.calls), ("closed", 0), "{b:?}");
}

#[tokio::test(start_paused = true)]
async fn where_a_cut_call_cannot_be_followed_it_does_not_count() {
    // A healthy backend answering in 1.2 s, well inside the 3 s policy
    // deadline; clients that wait only 1 s get 202s, and the breaker,
    // which cannot see how those calls end, hears nothing of them.
    let w = world(policy(), Step::Answer(200, Duration::from_millis(1200)));
    for _ in 0..10 {
        let done = w.engine.submit(wait(1)).await.unwrap();
        assert_eq!(reason(&done.answer), Some(Reason::Timeout));
    }
    let b = breaker(&w).await;
    assert_eq!((b.state, b.calls), ("closed", 0), "{b:?}");
    // Without a wait, the same backend answers in sync.
    let done = w.engine.submit(sub()).await.unwrap();
    assert!(matches!(done.answer, Answer::Sync { status: 200, .. }));
}

#[tokio::test(start_paused = true)]
async fn a_short_wait_never_takes_the_probe_slot() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    open(&w).await;
    advance(Duration::from_secs(5)).await;
    let calls = w.backend.calls().len();
    // The probe is due, but a call the client cuts at 1 s cannot judge a
    // backend the policy gives 3 s: it goes async without a call.
    for _ in 0..5 {
        let done = w.engine.submit(wait(1)).await.unwrap();
        assert_eq!(reason(&done.answer), Some(Reason::CircuitOpen));
    }
    assert_eq!(w.backend.calls().len(), calls);
    // The first request that waits the full deadline is the probe.
    let done = w.engine.submit(sub()).await.unwrap();
    assert!(matches!(done.answer, Answer::Sync { status: 200, .. }));
    assert_eq!(breaker(&w).await.state, "half_open");
}

#[tokio::test(start_paused = true)]
async fn a_followed_call_completes_its_ticket_and_the_backend_is_called_once() {
    let w = following(policy(), Step::Answer(200, Duration::from_secs(5)));
    let started = Instant::now();
    let done = w.engine.submit(sub()).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "answered at the deadline"
    );
    let id = accepted(&done.answer);
    let t = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (Status::Processing, 1), "in flight");
    // The missed deadline is a timeout of the sync path, recorded then.
    let b = breaker(&w).await;
    assert_eq!((b.calls, b.error_rate), (1, 1.0), "{b:?}");
    let t = w.work_until_terminal(id, Duration::from_secs(60)).await;
    assert_eq!((t.status, t.attempts), (Status::Succeeded, 1));
    assert_eq!(w.backend.calls().len(), 1, "one backend call per request");
    // Completed when the call answered (5 s), and notified right after, not
    // when the lease would have ended (15 s).
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    while w.store.published().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let _ = stop.send(());
    let _ = run.await;
    let b = breaker(&w).await;
    assert_eq!(b.calls, 1, "its late answer changes nothing: {b:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cut_call_is_judged_by_when_it_really_answers() {
    // Answers in 1.2 s, inside the 3 s policy deadline: a success, though
    // the client stopped waiting at 1 s.
    let w = following(policy(), Step::Answer(200, Duration::from_millis(1200)));
    let done = w.engine.submit(wait(1)).await.unwrap();
    let id = accepted(&done.answer);
    let b = breaker(&w).await;
    assert_eq!(b.calls, 0, "not judged yet: {b:?}");
    let t = w.work_until_terminal(id, Duration::from_secs(30)).await;
    assert_eq!((t.status, t.attempts), (Status::Succeeded, 1));
    let b = breaker(&w).await;
    assert_eq!((b.calls, b.error_rate, b.slow_rate), (1, 0.0, 0.0), "{b:?}");

    // Answers in 5 s: past the policy deadline, a timeout, counted at 3 s.
    w.backend
        .set_default(Step::Answer(200, Duration::from_secs(5)));
    let done = w.engine.submit(wait(1)).await.unwrap();
    let id = accepted(&done.answer);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let b = breaker(&w).await;
    assert_eq!((b.calls, b.error_rate), (2, 0.5), "{b:?}");
    let t = w.work_until_terminal(id, Duration::from_secs(30)).await;
    assert_eq!(t.status, Status::Succeeded);
    assert_eq!(w.backend.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_followed_call_that_fails_is_retried_by_the_worker_with_the_same_key() {
    let w = following(policy(), Step::Answer(200, Duration::from_millis(5)));
    w.backend.push(Step::Answer(503, Duration::from_secs(4)));
    let done = w.engine.submit(sub()).await.unwrap();
    let id = accepted(&done.answer);
    let t = w.work_until_terminal(id, Duration::from_secs(60)).await;
    assert_eq!((t.status, t.attempts), (Status::Succeeded, 2));
    assert_eq!(w.backend.keys(), vec![id, id]);
}

#[tokio::test(start_paused = true)]
async fn a_503_keeps_the_downstream_key_for_the_retry() {
    // The backend is slow and the queue is down: the sync attempt reached
    // the backend, then the capture failed.
    let w = world(policy(), Step::Answer(200, Duration::from_secs(10)));
    Faults::set(&w.faults.queue_send, true);
    let keyed = || Submission {
        idempotency_key: Some("pay-1".into()),
        ..sub()
    };
    let err = w.engine.submit(keyed()).await.unwrap_err();
    assert!(matches!(err, SubmitError::Unavailable { .. }), "{err:?}");
    Faults::set(&w.faults.queue_send, false);
    w.backend
        .set_default(Step::Answer(201, Duration::from_millis(5)));
    // The client's correct retry runs afresh, under the same ticket id.
    let done = w.engine.submit(keyed()).await.unwrap();
    assert!(!done.replayed);
    let Answer::Sync { ticket_id, .. } = done.answer else {
        panic!("sync expected: {done:?}")
    };
    let keys = w.backend.keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "one downstream Idempotency-Key");
    assert_eq!(ticket_id, keys[0]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_hangs_up_mid_capture_does_not_cut_it() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    // Each store and queue operation takes 1 s: at 1.5 s the ticket is
    // written and the message is not.
    w.faults.latency_ms.store(1_000, Ordering::SeqCst);
    let keyed = Submission {
        respond_async: true,
        idempotency_key: Some("k".into()),
        ..sub()
    };
    let hung_up = tokio::time::timeout(Duration::from_millis(2500), w.engine.submit(keyed.clone()));
    assert!(hung_up.await.is_err(), "the client left mid-capture");
    tokio::time::sleep(Duration::from_secs(5)).await;
    w.faults.latency_ms.store(0, Ordering::SeqCst);
    // The capture finished: ticket and message both, and the key replays it.
    let again = w.engine.submit(keyed).await.unwrap();
    assert!(again.replayed, "{again:?}");
    let id = accepted(&again.answer);
    assert!(w.store.get(&id).await.unwrap().is_some());
    assert_eq!(w.store.stats().await.unwrap().visible, 1);
}

#[tokio::test(start_paused = true)]
async fn a_ticket_left_by_a_failed_capture_never_runs() {
    let w = world(
        failover_core::Policy {
            ticket_ttl: Duration::from_secs(3600),
            ..policy()
        },
        Step::Answer(200, Duration::from_millis(5)),
    );
    // What a create that landed after its timeout and undo leaves, or a
    // process that died between the ticket and the message: the client got
    // 503, or nothing.
    let now = w.engine.deps().clock.now_ms();
    let left = written(TicketId::new(), now);
    w.store.create(&left).await.unwrap();
    let grace = failover_worker::sweeper::GRACE;
    advance(grace + Duration::from_secs(1)).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 0, "not revived");
    // Once expired it is closed, without a backend call.
    advance(Duration::from_secs(3600)).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 1);
    let t = w
        .work_until_terminal(left.id, Duration::from_secs(30))
        .await;
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.error.map(|e| e.kind), Some(ErrorKind::Expired));
    assert!(w.backend.calls().is_empty(), "never executed");
}

#[tokio::test(start_paused = true)]
async fn an_accepted_ticket_parked_behind_a_deep_backlog_still_runs_when_reached() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let id = w.accept().await;
    // No worker for longer than the grace period: the sweeper cannot tell
    // it from a failed capture's remains, and parks it.
    let grace = failover_worker::sweeper::GRACE;
    advance(grace + Duration::from_secs(1)).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 0);
    let parked = w.store.get(&id).await.unwrap().unwrap();
    assert!(parked.next_attempt_at > Some(w.engine.deps().clock.now_ms()));
    // Its own message then reaches a worker: it runs now, not at expiry.
    let t = w.work_until_terminal(id, Duration::from_secs(5)).await;
    assert_eq!((t.status, t.attempts), (Status::Succeeded, 1));
}

#[tokio::test(start_paused = true)]
async fn shutdown_starts_no_new_backend_call() {
    // One attempt per second: the second ticket's worker waits for its
    // slot when shutdown begins, and must not call the backend after it.
    let p = failover_core::Policy {
        drain_max_rps: 1,
        ..policy()
    };
    let w = world(p, Step::Answer(200, Duration::from_secs(2)));
    let (first, second) = (w.accept().await, w.accept().await);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.backend.calls().len(), 1);
    let _ = stop.send(());
    let _ = run.await;
    // The call under way finished and was written; the other was left for
    // the next run, untouched.
    let t = w.store.get(&first).await.unwrap().unwrap();
    assert_eq!(t.status, Status::Succeeded);
    assert_eq!(w.backend.calls().len(), 1, "no call after shutdown began");
    let t = w.store.get(&second).await.unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (Status::Queued, 0));
}

#[tokio::test(start_paused = true)]
async fn a_ticket_under_a_live_lease_is_not_expired_under_its_worker() {
    use failover_core::ports::Delivery;
    let p = failover_core::Policy {
        ticket_ttl: Duration::from_secs(1),
        ..policy()
    };
    let w = world(p, Step::Answer(200, Duration::from_millis(5)));
    let id = w.accept().await;
    // Another worker claimed it just before it expired and is calling the
    // backend now.
    let t = w.store.get(&id).await.unwrap().unwrap();
    let now = w.engine.deps().clock.now_ms();
    let claimed = t.claim(now, now + 15_000).unwrap();
    w.store.update(&claimed, t.status, t.version).await.unwrap();
    advance(Duration::from_secs(2)).await;
    let delivery = Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: failover_core::message::QueueMessage::new(id).to_body(),
        receive_count: 2,
        priority: failover_core::ports::Priority::normal(0),
    };
    let d = w.worker.handle(&delivery).await;
    assert!(matches!(d, failover_worker::Disposition::Retry(_)), "{d:?}");
    let t = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!((t.status, t.version), (Status::Processing, claimed.version));
}

#[tokio::test(start_paused = true)]
async fn a_worker_probe_that_cannot_claim_its_ticket_frees_the_slot() {
    use failover_core::ports::Delivery;
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    open(&w).await;
    let id = w.accept().await;
    advance(Duration::from_secs(5)).await;
    // The worker is admitted as the probe, then its claim fails.
    Faults::set(&w.faults.ticket_writes, true);
    let delivery = Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: failover_core::message::QueueMessage::new(id).to_body(),
        receive_count: 1,
        priority: failover_core::ports::Priority::normal(0),
    };
    w.worker.handle(&delivery).await;
    Faults::set(&w.faults.ticket_writes, false);
    assert_eq!(w.backend.calls().len(), 4, "no call without a claim");
    // The slot is free at once: the next request is the probe.
    let done = w.engine.submit(sub()).await.unwrap();
    assert!(
        matches!(done.answer, Answer::Sync { status: 200, .. }),
        "{done:?}"
    );
}
