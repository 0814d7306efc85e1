//! `Idempotency-Key`: replay, 409 while in flight, 422 on a different body.

use std::time::Duration;

use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app, spawn_app_with, test_policy};
use serde_json::Value;

#[tokio::test]
async fn a_sync_answer_is_replayed_without_calling_the_backend_again() {
    let app = spawn_app().await;
    app.backend
        .push(Behaviour::status(201, r#"{"payment":"p_9"}"#));
    let first = app
        .post(r#"{"amount": 9}"#)
        .header("idempotency-key", "order-9")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let second = app
        .post(r#"{"amount": 9}"#)
        .header("idempotency-key", "order-9")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["x-failover-mode"], "sync");
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.unwrap(), r#"{"payment":"p_9"}"#);
    assert_eq!(app.backend.calls().len(), 1);
}

#[tokio::test]
async fn an_accepted_request_is_replayed_as_the_same_ticket() {
    let app = spawn_app_with(test_policy(), Behaviour::status(503, "{}")).await;
    let send = || {
        app.post(r#"{"amount": 5}"#)
            .header("idempotency-key", "order-5")
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["ticket_id"], again["ticket_id"]);
    assert_eq!(first["reason"], again["reason"]);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app().await;
    let ok = app
        .post(r#"{"amount": 1}"#)
        .header("idempotency-key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let clash = app
        .post(r#"{"amount": 2}"#)
        .header("idempotency-key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(clash.status(), 422);
    assert_eq!(clash.headers()["content-type"], "application/problem+json");
    let p: Value = clash.json().await.unwrap();
    assert_eq!(p["status"], 422);
    assert_eq!(app.backend.calls().len(), 1);
}

#[tokio::test]
async fn the_same_key_while_in_flight_is_409_with_retry_after() {
    let mut policy = test_policy();
    policy.sync_deadline = Duration::from_secs(3);
    let app = spawn_app_with(
        policy,
        Behaviour::slow(200, "{}", Duration::from_millis(1500)),
    )
    .await;
    let first = app
        .post(r#"{"amount": 3}"#)
        .header("idempotency-key", "k-3")
        .send();
    let first = tokio::spawn(first);
    // Once the backend has the first call, the key is in flight.
    while app.backend.calls().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = app
        .post(r#"{"amount": 3}"#)
        .header("idempotency-key", "k-3")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    assert!(
        second.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    assert_eq!(app.backend.calls().len(), 1);
}

#[tokio::test]
async fn a_503_frees_the_key_for_the_retry() {
    let app = spawn_app_with(test_policy(), Behaviour::status(503, "{}")).await;
    failover_adapters::fault::Faults::set(&app.faults.queue_send, true);
    let send = || {
        app.post(r#"{"amount": 4}"#)
            .header("idempotency-key", "k-4")
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 503);
    failover_adapters::fault::Faults::set(&app.faults.queue_send, false);
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 202, "the retry runs afresh");
    assert!(!retry.headers().contains_key("idempotent-replayed"));
}
