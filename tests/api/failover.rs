//! Failover to 202: deadline, backend errors, client and operator choices,
//! and the 503 when the request cannot be made durable.

use std::time::{Duration, Instant};

use failover_adapters::fault::Faults;
use failover_core::config::ForceMode;
use failover_core::ports::Queue;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app, spawn_app_at, spawn_app_with, test_policy};
use serde_json::Value;

async fn accepted(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 202);
    let h = resp.headers().clone();
    assert_eq!(h["x-failover-mode"], "async");
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: Value = resp.json().await.unwrap();
    let id = body["ticket_id"].as_str().unwrap();
    assert_eq!(h["location"], format!("/tickets/{id}").as_str());
    assert_eq!(body["status_url"], format!("/tickets/{id}").as_str());
    assert_eq!(body["status"], "queued");
    body
}

#[tokio::test]
async fn a_timeout_fails_over_and_the_worker_completes_the_ticket() {
    let app = spawn_app().await;
    // Slower than the 300 ms deadline the first time, fast afterwards.
    app.backend.push(Behaviour::slow(
        200,
        r#"{"late":true}"#,
        Duration::from_secs(5),
    ));
    app.backend
        .set_default(Behaviour::status(201, r#"{"done":true}"#));
    let started = Instant::now();
    let body = accepted(app.post(r#"{"amount": 7}"#).send().await.unwrap()).await;
    // Answered at the deadline, not when the backend finally answered.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body["reason"], "timeout");
    let id = body["ticket_id"].as_str().unwrap();

    let t = app.wait_terminal(id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["result"]["status_code"], 201);
    assert_eq!(t["result"]["body"]["done"], true);
    assert!(t["attempts"].as_u64().unwrap() >= 1);
    // The background call used the same ticket id as Idempotency-Key as the
    // sync attempt, so the backend can tell they are one operation.
    let keys = app.backend.idempotency_keys();
    assert!(keys.iter().all(|k| k.as_deref() == Some(id)), "{keys:?}");

    let result = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(result.status(), 201);
    assert_eq!(result.text().await.unwrap(), r#"{"done":true}"#);
}

#[tokio::test]
async fn backend_errors_fail_over() {
    let app = spawn_app().await;
    for status in [500u16, 502, 503, 429] {
        // Every call, not the next one: the worker retrying the previous
        // ticket must not take the failure meant for this request.
        app.backend
            .set_default(Behaviour::status(status, r#"{"error":"busy"}"#));
        let body = accepted(app.post("{}").send().await.unwrap()).await;
        assert_eq!(body["reason"], "backend_error", "status {status}");
    }
}

#[tokio::test]
async fn an_unreachable_backend_fails_over() {
    // A port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut policy = test_policy();
    policy.max_attempts = 1;
    let app2 = spawn_app_at(policy, &format!("http://127.0.0.1:{port}/")).await;
    let body = accepted(app2.post("{}").send().await.unwrap()).await;
    assert_eq!(body["reason"], "backend_error");
    let t = app2
        .wait_terminal(body["ticket_id"].as_str().unwrap())
        .await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["kind"], "exhausted");
    let r = app2
        .get(&format!(
            "/tickets/{}/result",
            t["ticket_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status(), 502, "no backend answer to replay");
}

#[tokio::test]
async fn respond_async_skips_the_backend() {
    let app = spawn_app_with(test_policy(), Behaviour::Hang).await;
    let resp = app.post_async("{}").send().await.unwrap();
    assert_eq!(resp.headers()["preference-applied"], "respond-async");
    let body = accepted(resp).await;
    assert_eq!(body["reason"], "client_requested");
}

#[tokio::test]
async fn force_mode_async_queues_everything() {
    let mut policy = test_policy();
    policy.force_mode = ForceMode::Async;
    let app = spawn_app_with(policy, Behaviour::ok("{}")).await;
    let body = accepted(app.post("{}").send().await.unwrap()).await;
    assert_eq!(body["reason"], "forced");
    let h: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(
        (h["mode"].as_str(), h["force_mode"].as_str()),
        (Some("async"), Some("async"))
    );
}

#[tokio::test]
async fn too_many_concurrent_sync_attempts_are_shed() {
    let mut policy = test_policy();
    policy.sync_max_inflight = 2;
    policy.sync_deadline = Duration::from_secs(2);
    let app = spawn_app_with(
        policy,
        Behaviour::slow(200, "{}", Duration::from_millis(1500)),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let req = app.post("{}");
        tasks.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut reasons = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status() == 202 {
            let b: Value = r.json().await.unwrap();
            reasons.push(b["reason"].as_str().unwrap().to_string());
        } else {
            assert_eq!(r.status(), 200);
        }
    }
    assert_eq!(reasons, vec!["overloaded"; 3]);
}

async fn nothing_captured(app: &failover_tests::spawn::TestApp) {
    Faults::set(&app.faults.ticket_writes, false);
    Faults::set(&app.faults.queue_send, false);
    let s = app.store.stats().await.unwrap();
    assert_eq!(s.visible + s.in_flight, 0, "no message");
}

#[tokio::test]
async fn store_down_during_capture_is_a_503_never_a_202() {
    let app = spawn_app_with(test_policy(), Behaviour::status(503, "{}")).await;
    Faults::set(&app.faults.ticket_writes, true);
    let resp = app.post("{}").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    // What failed inside is logged, never sent (an AWS error names
    // accounts and roles).
    let problem: serde_json::Value = resp.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("nothing was accepted"), "{detail}");
    assert!(
        !detail.contains("injected") && !detail.contains("ticket store"),
        "{detail}"
    );
    nothing_captured(&app).await;
}

#[tokio::test]
async fn queue_down_during_capture_is_a_503_and_the_ticket_is_undone() {
    let app = spawn_app_with(test_policy(), Behaviour::status(503, "{}")).await;
    Faults::set(&app.faults.queue_send, true);
    let resp = app.post_async("{}").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(app.backend.calls().is_empty());
    nothing_captured(&app).await;
    // The ticket written before the queue failed was removed again: the
    // 202-or-nothing promise holds for the store too.
    let ids = app.store.ticket_ids().await.unwrap();
    assert!(ids.is_empty(), "{ids:?}");
}

#[tokio::test]
async fn a_stalled_store_answers_503_within_the_capture_budget() {
    let app = spawn_app_with(test_policy(), Behaviour::status(503, "{}")).await;
    app.faults
        .latency_ms
        .store(5_000, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let resp = app.post_async("{}").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(app.store.ticket_ids().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_ticket_write_that_lands_after_the_503_never_runs() {
    let app = spawn_app_with(test_policy(), Behaviour::ok("{}")).await;
    let f = &app.faults;
    f.creates_land_late
        .store(true, std::sync::atomic::Ordering::SeqCst);
    f.latency_ms
        .store(2_500, std::sync::atomic::Ordering::SeqCst);
    let resp = app.post_async("{}").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    // The create was on the wire: it lands after its timeout and after
    // the undo (which found nothing to remove).
    f.latency_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let ids = loop {
        let ids = app.store.ticket_ids().await.unwrap();
        if !ids.is_empty() {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ids.len(), 1);
    // Nothing ever acted on it: even a sweep that takes every ticket for
    // lost at once does not re-enqueue it, so the request the client was
    // told we did not accept is never executed.
    assert_eq!(app.worker.sweep(Duration::ZERO).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.backend.calls().is_empty(), "never executed");
    nothing_captured(&app).await;
}
