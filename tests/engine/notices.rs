//! Completion notifications on paused time: a receiver that is down for a
//! day is tried on the schedule, then shown exhausted; a terminal ticket
//! whose message is lost before its notifications are done is swept back.

use std::time::Duration;

use failover_core::engine::Submission;
use failover_core::ports::{Queue, TicketStore};
use failover_core::ticket::{Channel, Status};
use failover_core::view::TicketView;

use crate::scripted::Step;
use crate::{policy, sub, work_for, world, World};

async fn with_callback(w: &World) -> failover_core::ticket::TicketId {
    let done = w
        .engine
        .submit(Submission {
            respond_async: true,
            callback_url: Some("https://receiver.example/hook".into()),
            ..sub()
        })
        .await
        .unwrap();
    match done.answer {
        failover_core::engine::Answer::Accepted { ticket_id, .. } => ticket_id,
        other => panic!("not accepted: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_receiver_down_for_a_day_is_tried_on_the_schedule_then_shown_exhausted() {
    // These tests' webhook sender always fails.
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let id = with_callback(&w).await;
    // Handle each message when it is due: a day of paused time, stepped.
    let clock = w.engine.deps().clock.clone();
    for _ in 0..30 {
        let t = w.store.get(&id).await.unwrap().unwrap();
        if let Some(due) = t.due_at() {
            let wait = (due - clock.now_ms()).max(0) as u64;
            tokio::time::advance(Duration::from_millis(wait + 1)).await;
        }
        let got = w.store.receive(10, Duration::from_secs(60), Duration::ZERO);
        for d in got.await.unwrap() {
            let disposition = w.worker.handle(&d).await;
            w.worker.settle(&d, disposition).await;
        }
    }
    let t = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!(t.status, Status::Succeeded);
    let at: Vec<i64> = t
        .notifications
        .iter()
        .filter(|n| n.channel == Channel::Webhook)
        .map(|n| n.at)
        .collect();
    assert_eq!(at.len(), 8, "WEBHOOK_MAX_ATTEMPTS");
    let expected = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
    for (gap, secs) in at.windows(2).map(|p| p[1] - p[0]).zip(expected) {
        let want = secs * 1000;
        assert!(
            (want..want + 2000).contains(&gap),
            "{gap} ms, {secs} s wanted"
        );
    }
    let view = TicketView::from(&t);
    let delivery = view.delivery.expect("terminal");
    assert_eq!(
        (delivery.webhook, delivery.sns),
        (Some("exhausted"), "delivered")
    );
    assert_eq!(t.due_at(), None, "nothing left to deliver");
    // The message is settled.
    let s = w.store.stats().await.unwrap();
    assert_eq!(s.visible + s.in_flight, 0, "{s:?}");
    assert!(w.store.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_terminal_ticket_whose_notification_is_overdue_is_swept_back() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let id = with_callback(&w).await;
    // The first attempts happen; then the message is lost.
    work_for(&w, Duration::from_secs(1)).await;
    let t = w.store.get(&id).await.unwrap().unwrap();
    let pending = t.event.clone().expect("event");
    assert!(!pending.webhook_done);
    let before = t.notifications.len();
    // Its message (due again in 5 s) is lost.
    tokio::time::advance(Duration::from_secs(10)).await;
    let got = w.store.receive(10, Duration::from_secs(60), Duration::ZERO);
    for m in got.await.unwrap() {
        w.store.ack(&m).await.unwrap();
    }
    let s = w.store.stats().await.unwrap();
    assert_eq!(s.visible + s.in_flight, 0, "{s:?}");
    let grace = failover_worker::sweeper::GRACE;
    tokio::time::advance(grace + Duration::from_secs(10)).await;
    assert_eq!(w.worker.sweep(grace).await.unwrap(), 1);
    work_for(&w, Duration::from_secs(1)).await;
    let t = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!(t.notifications.len(), before + 1, "tried again");
}
