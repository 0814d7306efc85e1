//! Priority lanes and windows, through the engine, the queue and the
//! worker, on paused time (in-memory ports; local mode's SQLite queue
//! orders the same way, by the shared conformance suite).

use std::sync::Arc;
use std::time::Duration;

use failover_core::engine::{Answer, Submission};
use failover_core::lane::{Lane, Lanes};
use failover_core::ports::TicketStore;
use failover_core::ticket::{Reason, TicketId};
use failover_core::Policy;
use tokio::time::Instant;

use crate::scripted::Step;
use crate::{policy, work_for, world, World};

const RULES: &str = r#"[{"lane":"critical","pointer":"/amount","gte":10000},
                        {"lane":"bulk","pointer":"/kind","eq":"report"}]"#;

fn lanes(windows: &str, ageing: Duration) -> Arc<Lanes> {
    let mut l = Lanes::default();
    l.ageing = ageing;
    l.set_rules(RULES).expect("rules");
    if !windows.is_empty() {
        l.set_windows(windows).expect("windows");
    }
    Arc::new(l)
}

fn body(lane: Lane, i: usize) -> Vec<u8> {
    match lane {
        Lane::Critical => format!(r#"{{"amount":{},"i":{i}}}"#, 10_000 + i),
        Lane::Normal => format!(r#"{{"amount":{i},"i":{i}}}"#),
        Lane::Bulk => format!(r#"{{"kind":"report","i":{i}}}"#),
    }
    .into_bytes()
}

async fn submit(w: &World, lane: Lane, i: usize) -> (TicketId, Answer) {
    let done = w
        .engine
        .submit(Submission {
            body: body(lane, i),
            content_type: "application/json".into(),
            request_id: format!("r{i}"),
            ..Submission::default()
        })
        .await
        .expect("accepted");
    let id = match &done.answer {
        Answer::Accepted { ticket_id, .. } | Answer::Sync { ticket_id, .. } => *ticket_id,
    };
    (id, done.answer)
}

/// The lane of each backend call, in order.
async fn lanes_called(w: &World) -> Vec<Lane> {
    let mut out = Vec::new();
    for id in w.backend.keys() {
        let t = w.store.get(&id).await.unwrap().expect("ticket");
        out.push(t.request.lane);
    }
    out
}

/// Opens the breaker with four failed sync calls (normal lane).
async fn outage(w: &World) {
    for i in 0..4 {
        submit(w, Lane::Normal, 1000 + i).await;
    }
    let state = w.engine.deps().health.gate("").snapshot().await.state;
    assert_eq!(state, "open");
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_the_backlog_drains_critical_then_normal_then_bulk() {
    let p = Policy {
        lanes: lanes("", Duration::from_secs(3600)),
        drain_max_rps: 5,
        ..policy()
    };
    let w = world(p, Step::Answer(503, Duration::from_millis(5)));
    outage(&w).await;
    // Arriving mixed while the backend is down: all queued at once.
    for i in 0..10 {
        for lane in [Lane::Bulk, Lane::Normal, Lane::Critical] {
            let (id, answer) = submit(&w, lane, i).await;
            assert!(matches!(
                answer,
                Answer::Accepted {
                    reason: Reason::CircuitOpen,
                    ..
                }
            ));
            let t = w.store.get(&id).await.unwrap().unwrap();
            assert_eq!(t.request.lane, lane);
        }
    }
    let before = w.backend.keys().len();
    w.backend
        .set_default(Step::Answer(200, Duration::from_millis(5)));
    work_for(&w, Duration::from_secs(60)).await;
    let called: Vec<Lane> = lanes_called(&w).await.split_off(before);
    assert_eq!(called.len(), 34, "{called:?}");
    let last = |lane| called.iter().rposition(|l| *l == lane).expect("called");
    let first = |lane| called.iter().position(|l| *l == lane).expect("called");
    // Every critical ticket before any bulk one, and before the normal
    // lane's last; bulk last of all.
    assert!(last(Lane::Critical) < first(Lane::Bulk), "{called:?}");
    assert!(last(Lane::Critical) < last(Lane::Normal), "{called:?}");
    assert!(last(Lane::Normal) < first(Lane::Bulk), "{called:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lower_lane_ages_into_service() {
    let drain = |ageing| Policy {
        lanes: lanes("", ageing),
        drain_max_rps: 1,
        ..policy()
    };
    for (ageing, served_early) in [
        (Duration::from_secs(5), true),
        (Duration::from_secs(3600), false),
    ] {
        let w = world(drain(ageing), Step::Answer(200, Duration::from_millis(5)));
        // One normal request, then twenty critical ones, all queued.
        let capture = |lane, i| {
            let w = &w;
            async move {
                w.engine
                    .submit(Submission {
                        respond_async: true,
                        body: body(lane, i),
                        content_type: "application/json".into(),
                        ..Submission::default()
                    })
                    .await
                    .expect("accepted")
            }
        };
        capture(Lane::Normal, 0).await;
        for i in 0..20 {
            capture(Lane::Critical, i).await;
        }
        // One a second: twenty seconds of critical work.
        work_for(&w, Duration::from_secs(30)).await;
        let called = lanes_called(&w).await;
        assert_eq!(called.len(), 21);
        let normal_at = called.iter().position(|l| *l == Lane::Normal).unwrap();
        // Aged past 5 s it is served as critical, in its place in line.
        assert_eq!(
            normal_at < 20,
            served_early,
            "ageing {ageing:?}: {called:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bulk_waits_for_its_window_then_drains() {
    // The clock starts at 08:00 UTC; bulk's window is 08:30 to 09:00.
    let p = Policy {
        lanes: lanes(r#"{"bulk":["08:30-09:00 UTC"]}"#, Duration::from_secs(300)),
        ..policy()
    };
    let w = world(p, Step::Answer(200, Duration::from_millis(5)));
    let started = Instant::now();
    // A healthy backend, yet bulk is queued at once, not tried.
    let (id, answer) = submit(&w, Lane::Bulk, 1).await;
    assert_eq!(
        answer,
        Answer::Accepted {
            ticket_id: id,
            reason: Reason::Scheduled,
            retry_after_s: 1800,
        }
    );
    let (_, normal) = submit(&w, Lane::Normal, 2).await;
    assert!(matches!(normal, Answer::Sync { status: 200, .. }));
    let t = w.store.get(&id).await.unwrap().unwrap();
    let opens = t.next_attempt_at.expect("due when the window opens");
    assert_eq!(opens - t.created_at, 1_800_000);
    let view = failover_core::view::TicketView::waiting(&t, Some(opens));
    assert_eq!(view.not_before.as_deref(), Some("2027-01-15T08:30:00.000Z"));
    assert_eq!(view.lane, "bulk");
    // Nothing before the window, then it runs (one worker run throughout:
    // a stopped worker starts no more calls).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(1790)).await;
    assert_eq!(w.backend.calls().len(), 1, "only the normal request so far");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let calls = w.backend.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[1] - started >= Duration::from_secs(1800), "{calls:?}");
    // After the window closes, bulk is queued again and waits a day.
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let (late, answer) = submit(&w, Lane::Bulk, 3).await;
    assert!(
        matches!(answer, Answer::Accepted { reason: Reason::Scheduled, retry_after_s, .. } if retry_after_s > 23 * 3600)
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    let _ = stop.send(());
    let _ = run.await;
    assert_eq!(w.backend.calls().len(), 2);
    let t = w.store.get(&late).await.unwrap().unwrap();
    assert_eq!(t.attempts, 0);
}

#[tokio::test(start_paused = true)]
async fn a_window_that_closes_stops_its_lane_without_spending_attempts() {
    // Bulk's window is 08:30 to 08:31; the drain bound is one a second.
    let p = Policy {
        lanes: lanes(r#"{"bulk":["08:30-08:31 UTC"]}"#, Duration::from_secs(300)),
        drain_max_rps: 1,
        ..policy()
    };
    let w = world(p, Step::Answer(200, Duration::from_millis(5)));
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(submit(&w, Lane::Bulk, i).await.0);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(w.worker.clone().run(4, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(1800 + 120)).await;
    let _ = stop.send(());
    let _ = run.await;
    // About a minute's worth ran, all inside the window; the rest wait
    // for tomorrow's, no attempt spent.
    let calls = w.backend.calls();
    assert!((50..=62).contains(&calls.len()), "{} calls", calls.len());
    let window = |at: &Instant| {
        let since = *at - calls[0] + Duration::from_secs(1800);
        (Duration::from_secs(1800)..Duration::from_secs(1860)).contains(&since)
    };
    assert!(calls.iter().all(window));
    let tomorrow = 1_800_000_000_000 + 86_400_000 + 1_800_000;
    for id in ids {
        let t = w.store.get(&id).await.unwrap().unwrap();
        if !t.status.is_terminal() {
            assert_eq!(
                (t.attempts, t.next_attempt_at),
                (0, Some(tomorrow)),
                "{t:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_lane_is_held_back_while_a_higher_one_has_work_ready() {
    // As on SQS, where each lane's queue is polled on its own: a normal
    // message handed to the worker while critical ones are ready waits.
    let p = Policy {
        lanes: lanes("", Duration::from_secs(300)),
        ..policy()
    };
    let w = world(p, Step::Answer(200, Duration::from_millis(5)));
    for i in 0..3 {
        w.engine
            .submit(Submission {
                respond_async: true,
                body: body(Lane::Critical, i),
                content_type: "application/json".into(),
                ..Submission::default()
            })
            .await
            .unwrap();
    }
    let normal = w
        .engine
        .submit(Submission {
            respond_async: true,
            body: body(Lane::Normal, 9),
            content_type: "application/json".into(),
            ..Submission::default()
        })
        .await
        .unwrap();
    let Answer::Accepted {
        ticket_id: normal, ..
    } = normal.answer
    else {
        panic!("not queued");
    };
    let delivery = |since_ms| failover_core::ports::Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: failover_core::message::QueueMessage::new(normal).to_body(),
        receive_count: 1,
        priority: failover_core::ports::Priority {
            lane: Lane::Normal,
            since_ms,
        },
    };
    let now = 1_800_000_000_000;
    let held = w.worker.handle(&delivery(now)).await;
    assert!(
        matches!(held, failover_worker::Disposition::Requeue(_)),
        "{held:?}"
    );
    assert!(w.backend.calls().is_empty());
    // When the hold is over, one that has waited an ageing period is
    // served as critical: it runs.
    tokio::time::advance(Duration::from_secs(3)).await;
    let aged = w.worker.handle(&delivery(now - 300_001)).await;
    assert_eq!(aged, failover_worker::Disposition::Ack);
    assert_eq!(w.backend.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn with_the_queue_counts_unreadable_nothing_is_held_back() {
    // The counts are what the hold-back decides by; without them a lane
    // is served as if alone rather than stopped.
    let p = Policy {
        lanes: lanes("", Duration::from_secs(300)),
        ..policy()
    };
    let w = world(p, Step::Answer(200, Duration::from_millis(5)));
    for i in 0..3 {
        w.engine
            .submit(Submission {
                respond_async: true,
                body: body(Lane::Critical, i),
                content_type: "application/json".into(),
                ..Submission::default()
            })
            .await
            .unwrap();
    }
    let normal = w
        .engine
        .submit(Submission {
            respond_async: true,
            body: body(Lane::Normal, 9),
            content_type: "application/json".into(),
            ..Submission::default()
        })
        .await
        .unwrap();
    let Answer::Accepted { ticket_id, .. } = normal.answer else {
        panic!("not queued");
    };
    failover_adapters::fault::Faults::set(&w.faults.queue_stats, true);
    let delivery = failover_core::ports::Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: failover_core::message::QueueMessage::new(ticket_id).to_body(),
        receive_count: 1,
        priority: failover_core::ports::Priority::normal(1_800_000_000_000),
    };
    let done = w.worker.handle(&delivery).await;
    assert_eq!(done, failover_worker::Disposition::Ack);
    assert_eq!(w.backend.calls().len(), 1);
}
