//! The worker through the API: retries, rejection, exhaustion, duplicate and
//! poison messages, long polling.

use std::time::Duration;

use failover_adapters::fault::Faults;
use failover_core::message::QueueMessage;
use failover_core::ports::Queue;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_with, test_policy};
use serde_json::Value;

async fn queue_one(app: &failover_tests::spawn::TestApp) -> String {
    let resp = app.post_async(r#"{"amount": 1}"#).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    resp.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn retryable_failures_back_off_then_succeed() {
    let app = spawn_app_with(test_policy(), Behaviour::ok(r#"{"ok":1}"#)).await;
    app.backend.push(Behaviour::status(503, "{}"));
    app.backend.push(Behaviour::status(429, "{}"));
    let id = queue_one(&app).await;
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["attempts"], 3);
    assert_eq!(app.backend.calls().len(), 3);
}

#[tokio::test]
async fn a_backend_4xx_fails_the_ticket_as_rejected() {
    let app = spawn_app_with(
        test_policy(),
        Behaviour::status(422, r#"{"error":"bad iban"}"#),
    )
    .await;
    let id = queue_one(&app).await;
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["kind"], "rejected");
    assert_eq!(t["attempts"], 1);
    let r = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"bad iban"}"#);
}

#[tokio::test]
async fn attempts_run_out_as_exhausted() {
    let mut policy = test_policy();
    policy.max_attempts = 3;
    let app = spawn_app_with(policy, Behaviour::status(500, r#"{"error":"down"}"#)).await;
    let id = queue_one(&app).await;
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["kind"], "exhausted");
    assert_eq!(t["attempts"], 3);
    assert_eq!(app.backend.calls().len(), 3);
    let r = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(r.status(), 500, "the last backend answer");
}

#[tokio::test]
async fn a_duplicate_delivery_calls_the_backend_once() {
    let app = spawn_app_with(
        test_policy(),
        Behaviour::slow(200, "{}", Duration::from_millis(300)),
    )
    .await;
    let id = queue_one(&app).await;
    // Two more messages for the same ticket, as a redelivering queue or a
    // retried send would produce.
    let ticket_id = id.parse().unwrap();
    let body = QueueMessage::new(ticket_id).to_body();
    let normal = failover_core::ports::Priority::normal(0);
    app.store.send(&body, normal, Duration::ZERO).await.unwrap();
    app.store.send(&body, normal, Duration::ZERO).await.unwrap();
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded");
    // Wait until every copy was settled, then count.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while app.store.stats().await.unwrap().visible + app.store.stats().await.unwrap().in_flight > 0
    {
        assert!(std::time::Instant::now() < until, "messages left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.backend.calls().len(), 1, "{:?}", app.backend.calls());
    assert_eq!(app.ticket(&id).await["attempts"], 1);
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue() {
    let app = spawn_app_with(test_policy(), Behaviour::ok("{}")).await;
    app.store
        .send(
            "this is not a message",
            failover_core::ports::Priority::normal(0),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dead = failover_core::operator::ports::DeadLetters::dead_letters(&app.store, 10)
            .await
            .unwrap();
        if !dead.is_empty() {
            assert_eq!(dead[0].body, "this is not a message");
            let reason = dead[0].reason.clone().unwrap_or_default();
            assert!(reason.contains("unparseable"), "{reason}");
            break;
        }
        assert!(std::time::Instant::now() < until, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(h["queue"]["dead_letters"], 1);
    assert!(app.backend.calls().is_empty());
}

#[tokio::test]
async fn long_polling_returns_when_the_status_changes() {
    let app = spawn_app_with(test_policy(), Behaviour::Hang).await;
    // The worker cannot receive yet: the ticket stays queued.
    Faults::set(&app.faults.queue_receive, true);
    let id = queue_one(&app).await;
    let early = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(early.status(), 404);
    assert!(early.headers().contains_key("retry-after"));
    assert_eq!(
        early.headers()["location"],
        format!("/tickets/{id}").as_str()
    );
    assert_eq!(app.ticket(&id).await["status"], "queued");

    let poll = app
        .client
        .get(format!("{}/tickets/{id}?wait=20", app.base))
        .send();
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move { poll.await.unwrap().json::<Value>().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "the poll waits while nothing changes");
    Faults::set(&app.faults.queue_receive, false);
    let t = poll.await.unwrap();
    let took = started.elapsed();
    assert_eq!(t["status"], "processing", "{t}");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(
        took < Duration::from_secs(15),
        "returned on the change, not the timeout: {took:?}"
    );

    // A terminal ticket is answered at once, whatever the wait.
    app.backend.set_default(Behaviour::ok("{}"));
    app.wait_terminal(&id).await;
    let started = std::time::Instant::now();
    app.get(&format!("/tickets/{id}?wait=5")).await;
    assert!(started.elapsed() < Duration::from_secs(2));
}
