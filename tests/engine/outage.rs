//! The worker through an outage: it defers instead of burning attempts, the
//! sweeper does not mistake the deferred backlog for lost messages, and
//! after recovery the backlog drains at a bounded, ramped rate.

use std::time::Duration;

use failover_core::ports::TicketStore;
use failover_core::ticket::Status;
use failover_core::Policy;

use crate::scripted::Step;
use crate::{policy, sub, world};

#[tokio::test(start_paused = true)]
async fn while_the_breaker_is_open_the_worker_defers_without_burning_attempts() {
    let w = world(policy(), Step::Answer(503, Duration::from_millis(5)));
    // Four failed sync calls open the breaker (5 s).
    for _ in 0..4 {
        w.engine.submit(sub()).await.unwrap();
    }
    assert_eq!(
        w.engine.deps().health.gate("").snapshot().await.state,
        "open"
    );
    let calls_before = w.backend.calls().len();
    w.backend
        .set_default(Step::Answer(200, Duration::from_millis(5)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    // Inside the open period nothing is attempted: tickets stay queued
    // with no attempt spent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.backend.calls().len(), calls_before, "no call while open");
    // Then the worker probes, the backend answers, the backlog drains and
    // the breaker closes without any API traffic.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let _ = stop.send(());
    let _ = run.await;
    assert_eq!(
        w.engine.deps().health.gate("").snapshot().await.state,
        "closed"
    );
    assert_eq!(
        w.backend.calls().len(),
        calls_before + 4,
        "one call per ticket"
    );
}

#[tokio::test(start_paused = true)]
async fn after_recovery_the_backlog_drains_at_a_ramped_bounded_rate() {
    let w = world(
        Policy {
            drain_max_rps: 10,
            drain_ramp: Duration::from_secs(10),
            ..policy()
        },
        Step::Answer(503, Duration::from_millis(5)),
    );
    for _ in 0..4 {
        w.engine.submit(sub()).await.unwrap();
    }
    let mut backlog = Vec::new();
    for _ in 0..36 {
        backlog.push(w.accept().await);
    }
    assert_eq!(
        w.engine.deps().health.gate("").snapshot().await.state,
        "open"
    );
    w.backend
        .set_default(Step::Answer(200, Duration::from_millis(5)));
    let before = w.backend.calls().len();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(8, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let _ = stop.send(());
    let _ = run.await;
    for id in backlog {
        let t = w.store.get(&id).await.unwrap().unwrap();
        assert_eq!((t.status, t.attempts), (Status::Succeeded, 1));
    }
    // The first three calls are the probes that close the breaker; every
    // later one is spaced by the ramp: 1/s at first, 10/s after 10 s.
    let calls = w.backend.calls()[before..].to_vec();
    assert_eq!(calls.len(), 40);
    let closed = calls[2];
    let in_first = |s: u64| {
        calls[3..]
            .iter()
            .filter(|c| c.duration_since(closed) < Duration::from_secs(s))
            .count()
    };
    // Integral of the rate 1 + 0.9 t over the first 2 s (+1: a slot at 0).
    assert!(in_first(2) <= 4, "{} calls in the first 2 s", in_first(2));
    for pair in calls[3..].windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(gap >= Duration::from_millis(99), "gap {gap:?}");
    }
    let drained = calls[39].duration_since(closed);
    assert!(
        drained < Duration::from_secs(15),
        "drained after {drained:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_outage_backlog_is_deferred_not_swept_as_lost() {
    let w = world(policy(), Step::Answer(503, Duration::from_millis(5)));
    for _ in 0..4 {
        w.engine.submit(sub()).await.unwrap();
    }
    let mut backlog = Vec::new();
    for _ in 0..20 {
        backlog.push(w.accept().await);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    // Forty minutes of outage, swept every minute as local mode does: the
    // worker keeps deferring the backlog, and the sweeper never mistakes
    // a deferred ticket for a lost one.
    let grace = failover_worker::sweeper::GRACE;
    for minute in 0..40 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let swept = w.worker.sweep(grace).await.unwrap();
        assert_eq!(swept, 0, "minute {minute}: {swept} tickets re-enqueued");
    }
    assert_eq!(
        w.engine.deps().health.gate("").snapshot().await.state,
        "open"
    );
    // Recovery: every ticket succeeds after the probes close the breaker.
    w.backend
        .set_default(Step::Answer(200, Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_secs(600)).await;
    let _ = stop.send(());
    let _ = run.await;
    for id in backlog {
        let t = w.store.get(&id).await.unwrap().unwrap();
        assert_eq!(t.status, Status::Succeeded, "{t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_backlog_deeper_than_the_grace_period_gets_one_message_per_period() {
    use failover_core::ports::Queue;
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let mut backlog = Vec::new();
    for _ in 0..5 {
        backlog.push(w.accept().await);
    }
    // Nobody works the queue: the messages wait, visible, past the grace.
    // Tickets no worker has reached yet are not taken for lost (they may
    // be what a failed capture left): they are parked instead.
    let grace = failover_worker::sweeper::GRACE;
    let depth = || async { w.store.stats().await.unwrap().visible };
    tokio::time::advance(grace + Duration::from_secs(60)).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 0);
    // Tickets a worker deferred once, due long ago, are.
    let now = w.engine.deps().clock.now_ms();
    for id in backlog {
        let t = w.store.get(&id).await.unwrap().unwrap();
        let deferred = t.postpone(now, t.created_at).unwrap();
        w.store
            .update(&deferred, t.status, t.version)
            .await
            .unwrap();
    }
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 5);
    assert_eq!(depth().await, 10);
    // Later sweeps within the grace period add nothing...
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(w.worker.sweep(grace).await.unwrap(), 0);
    }
    assert_eq!(depth().await, 10);
    // ...and after another period, one message more per ticket.
    tokio::time::advance(grace).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_outage_of_hours_sends_nothing_to_the_dead_letter_queue() {
    let w = world(policy(), Step::Answer(503, Duration::from_millis(5)));
    for _ in 0..4 {
        w.engine.submit(sub()).await.unwrap();
    }
    let mut backlog = Vec::new();
    for _ in 0..10 {
        backlog.push(w.accept().await);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    // Ten hours down, the open period capped at 5 minutes: ~120 deferrals
    // per message, more than the queue's 100 receives before it
    // dead-letters. Long deferrals re-send the message instead, so none is
    // received that often, and no sweeper is needed to recover any.
    tokio::time::sleep(Duration::from_secs(10 * 3600)).await;
    assert_eq!(
        w.engine.deps().health.gate("").snapshot().await.state,
        "open"
    );
    w.backend
        .set_default(Step::Answer(200, Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_secs(900)).await;
    let _ = stop.send(());
    let _ = run.await;
    assert_eq!(w.store.dead_letters(), Vec::new(), "dead-lettered");
    for id in backlog {
        let t = w.store.get(&id).await.unwrap().unwrap();
        assert_eq!(t.status, Status::Succeeded, "{t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_requeue_that_cannot_send_keeps_the_message() {
    use failover_adapters::fault::Faults;
    use failover_core::ports::Queue;
    use failover_worker::Disposition;
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    w.accept().await;
    let wait = Duration::from_secs(120);
    let receive = || async {
        w.store
            .receive(10, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap()
    };
    let first = receive().await.remove(0);
    // The copy cannot be sent: the original is deferred instead, not lost.
    Faults::set(&w.faults.queue_send, true);
    assert!(!w.worker.settle(&first, Disposition::Requeue(wait)).await);
    Faults::set(&w.faults.queue_send, false);
    tokio::time::advance(wait + Duration::from_secs(1)).await;
    let again = receive().await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first.message_id, "the same message");
    // Sent: a delayed copy replaces it.
    assert!(w.worker.settle(&again[0], Disposition::Requeue(wait)).await);
    assert!(receive().await.is_empty(), "delayed");
    tokio::time::advance(wait + Duration::from_secs(1)).await;
    let copy = receive().await;
    assert_eq!(copy.len(), 1);
    assert_ne!(copy[0].message_id, first.message_id, "a fresh copy");
    assert_eq!(copy[0].body, first.body);
}
