//! `DELETE /tickets/{id}`: a client cancels its queued ticket; nothing else
//! can be cancelled, and a cancelled ticket never reaches the backend.

use std::time::Duration;

use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_waiting, spawn_app_with, test_policy, TestApp};
use serde_json::Value;

async fn delete(app: &TestApp, id: &str) -> (u16, String, Value) {
    let resp = app
        .client
        .delete(format!("{}/tickets/{id}", app.base))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_queued_ticket_is_cancelled_notified_and_never_sent() {
    let app = spawn_app_waiting().await;
    let id = app.accepted().await;
    let (status, _, body) = delete(&app, &id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"]["kind"], "cancelled");
    assert_eq!(app.ticket(&id).await["error"]["kind"], "cancelled");
    // Notified like any terminal ticket, at once (not when the window opens).
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let published = app.store.publications().await.unwrap();
        if let Some(p) = published.iter().find(|p| p.body.contains(&id)) {
            assert_eq!(
                (p.event_type.as_str(), p.status.as_str()),
                ("ticket.failed", "failed")
            );
            assert!(p.body.contains("cancelled"), "{}", p.body);
            break;
        }
        assert!(tokio::time::Instant::now() < until, "never published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once terminal, a second cancel is a conflict, with the reason.
    let (status, ct, problem) = delete(&app, &id).await;
    assert_eq!((status, ct.as_str()), (409, "application/problem+json"));
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("only a queued ticket"),
        "{problem}"
    );
    assert!(app.backend.calls().is_empty(), "a cancelled ticket ran");
}

#[tokio::test]
async fn a_ticket_being_processed_cannot_be_cancelled() {
    let app = spawn_app_with(test_policy(), Behaviour::Hang).await;
    let id = app.accepted().await;
    app.wait_for(&id, |t| t["status"] == "processing").await;
    let (status, ct, problem) = delete(&app, &id).await;
    assert_eq!(
        (status, ct.as_str()),
        (409, "application/problem+json"),
        "{problem}"
    );
    assert_eq!(problem["type"], "/problems/ticket-not-cancellable");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("is processing"),
        "{problem}"
    );
    assert_eq!(app.ticket(&id).await["status"], "processing");
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_refused() {
    let app = spawn_app_waiting().await;
    let (status, ct, _) = delete(&app, "0190a5b2-7c3e-7d4a-9b1f-2c3d4e5f6a7b").await;
    assert_eq!((status, ct.as_str()), (404, "application/problem+json"));
    let (status, ct, _) = delete(&app, "not-a-ticket").await;
    assert_eq!((status, ct.as_str()), (400, "application/problem+json"));
}
