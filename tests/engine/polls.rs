//! Long polls (`GET /tickets/{id}?wait=N`) on paused time, straight into the
//! router: capped by the host's remaining time, backing off, bounded.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use failover_api::{router, AppState, DeadlineCap, MAX_LONG_POLLS};
use failover_core::ticket::TicketId;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::scripted::Step;
use crate::{policy, world};

/// One poll: its status, whether it said `Retry-After`, and how long it took.
async fn poll(app: &Router, id: TicketId, wait: u64) -> (StatusCode, bool, Duration) {
    let started = Instant::now();
    let req = Request::get(format!("/tickets/{id}?wait={wait}"))
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("answered");
    let retry = resp.headers().contains_key("retry-after");
    (resp.status(), retry, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_ends_before_the_lambda_invocation_does() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let id = w.accept().await;
    let app = router(AppState::new(w.engine.clone()))
        .layer(axum::Extension(DeadlineCap(Duration::from_millis(1500))));
    let (status, retry, took) = poll(&app, id, 20).await;
    assert_eq!((status, retry), (StatusCode::OK, true));
    assert_eq!(took, Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_backs_off_its_reads() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let id = w.accept().await;
    let app = router(AppState::new(w.engine.clone()));
    let before = w.faults.ticket_reads_made.load(Ordering::SeqCst);
    let (status, _, took) = poll(&app, id, 20).await;
    assert_eq!((status, took), (StatusCode::OK, Duration::from_secs(20)));
    // 100 ms doubling to 1 s: about 25 reads in 20 s, not 200.
    let reads = w.faults.ticket_reads_made.load(Ordering::SeqCst) - before;
    assert!((20..=30).contains(&reads), "{reads} reads");
}

#[tokio::test(start_paused = true)]
async fn long_polls_beyond_the_bound_answer_at_once() {
    let w = world(policy(), Step::Answer(200, Duration::from_millis(5)));
    let id = w.accept().await;
    let app = router(AppState::new(w.engine.clone()));
    let held: Vec<_> = (0..MAX_LONG_POLLS)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { poll(&app, id, 20).await })
        })
        .collect();
    // Let every one of them start waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, retry, took) = poll(&app, id, 20).await;
    assert_eq!(
        (status, retry, took),
        (StatusCode::OK, true, Duration::ZERO)
    );
    for h in held {
        let (_, _, took) = h.await.expect("poll");
        assert!(took >= Duration::from_secs(19), "{took:?}");
    }
}
