//! The sync path: the backend answers in time.

use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app, spawn_app_with, test_policy};

#[tokio::test]
async fn a_healthy_backend_answers_synchronously() {
    let app = spawn_app().await;
    app.backend
        .push(Behaviour::status(201, r#"{"payment":"p_1"}"#));
    let resp = app
        .post(r#"{"amount": 42}"#)
        .header("x-request-id", "req-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-failover-mode"], "sync");
    assert_eq!(resp.headers()["x-request-id"], "req-abc");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), r#"{"payment":"p_1"}"#);

    // The backend got the body unchanged, a ticket id as Idempotency-Key and
    // our request id.
    let calls = app.backend.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body, r#"{"amount": 42}"#);
    assert_eq!(calls[0].request_id.as_deref(), Some("req-abc"));
    let key = calls[0].idempotency_key.clone().unwrap();
    assert!(
        key.parse::<failover_core::ticket::TicketId>().is_ok(),
        "{key}"
    );
    // Nothing was queued.
    let stats = failover_core::ports::Queue::stats(&app.store)
        .await
        .unwrap();
    assert_eq!(stats.visible + stats.in_flight, 0);
}

#[tokio::test]
async fn every_response_gets_a_request_id() {
    let app = spawn_app().await;
    let resp = app.post("{}").send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let not_found = app.get("/nowhere").await;
    assert_eq!(not_found.status(), 404);
    assert!(not_found.headers().contains_key("x-request-id"));
    assert_eq!(
        not_found.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_4xx_is_a_definitive_answer_and_never_fails_over() {
    let app = spawn_app().await;
    for status in [400u16, 404, 409, 422] {
        app.backend
            .push(Behaviour::status(status, r#"{"error":"card declined"}"#));
        let resp = app.post(r#"{"amount": 1}"#).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()["x-failover-mode"], "sync");
        assert_eq!(resp.text().await.unwrap(), r#"{"error":"card declined"}"#);
    }
    let stats = failover_core::ports::Queue::stats(&app.store)
        .await
        .unwrap();
    assert_eq!(stats.visible + stats.in_flight, 0, "nothing queued");
}

#[tokio::test]
async fn prefer_wait_caps_the_deadline() {
    let mut policy = test_policy();
    policy.sync_deadline = std::time::Duration::from_secs(10);
    let app = spawn_app_with(policy, Behaviour::Hang).await;
    let started = std::time::Instant::now();
    let resp = app
        .post("{}")
        .header("prefer", "wait=1")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["preference-applied"], "wait=1");
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "timeout");
}

#[tokio::test]
async fn health_reports_mode_breaker_and_queue() {
    let app = spawn_app().await;
    let h: serde_json::Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(h["mode"], "sync");
    assert_eq!(h["force_mode"], "auto");
    assert_eq!(h["breaker"]["state"], "closed");
    assert_eq!(h["queue"]["available"], true);
    assert_eq!(h["queue"]["depth"], 0);
    assert_eq!(h["breaker"]["scope"], "process");
    assert_eq!(
        h["breaker"]["p95_ms"],
        serde_json::Value::Null,
        "no call yet"
    );
    app.post(r#"{"amount":1}"#).send().await.unwrap();
    let h: serde_json::Value = app.get("/health").await.json().await.unwrap();
    assert!(h["breaker"]["p95_ms"].is_u64(), "{h}");
    assert_eq!(h["breaker"]["calls"], 1);
}

#[tokio::test]
async fn bytes_that_are_not_utf8_come_back_verbatim_on_every_path() {
    const BYTES: &[u8] = &[0xff, 0xfe, 0x00, b'{', 0xc3, 0x28, 0x80];
    let octets = "application/octet-stream";
    let zero = std::time::Duration::ZERO;
    let app = spawn_app_with(test_policy(), Behaviour::bytes(200, BYTES, octets, zero)).await;
    // The sync answer, then its idempotent replay.
    for replayed in [false, true] {
        let r = app
            .post(r#"{"amount": 1}"#)
            .header("idempotency-key", "bin-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], octets);
        assert_eq!(r.headers().contains_key("idempotent-replayed"), replayed);
        assert_eq!(&r.bytes().await.unwrap()[..], BYTES, "replayed: {replayed}");
    }
    // The async path: the ticket shows them as base64, `/result` as sent.
    let r = app.post_async(r#"{"amount": 2}"#).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["result"]["body_encoding"], "base64", "{t}");
    assert_eq!(t["result"]["body"], "//4Ae8MogA==", "{t}");
    let r = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], octets);
    assert_eq!(&r.bytes().await.unwrap()[..], BYTES);
}

#[tokio::test]
async fn an_answer_over_max_answer_bytes_is_kept_as_a_problem_and_never_retried() {
    let policy = failover_core::Policy {
        max_answer_bytes: 1024,
        ..test_policy()
    };
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(4096));
    let app = spawn_app_with(policy, Behaviour::status(200, &big)).await;
    let r = app.post(r#"{"amount": 1}"#).send().await.unwrap();
    assert_eq!(r.status(), 200, "the backend's status stands");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/answer-too-large", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("MAX_ANSWER_BYTES"));
    // In the background: the ticket succeeds with that problem, once.
    let r = app.post_async(r#"{"amount": 2}"#).send().await.unwrap();
    let id = r.json::<serde_json::Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["result"]["body"]["type"], "/problems/answer-too-large");
    assert_eq!(app.backend.answered_for(&id), 1);
}
