//! `GET /tickets/{id}/events`: a ticket's status changes as Server-Sent
//! Events, ending after the terminal one; `Last-Event-ID` resumes without
//! repeats; the 202 links to it.

use std::time::Duration;

use failover_core::ports::TicketStore;
use failover_core::ticket::Status;
use failover_tests::spawn::{spawn_app_waiting, TestApp};
use failover_tests::sse::SseReader;

const SOON: Duration = Duration::from_secs(5);

async fn open(app: &TestApp, id: &str, last: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}/tickets/{id}/events", app.base));
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_s_changes_stream_until_its_end_and_resume_without_repeats() {
    let app = spawn_app_waiting().await;
    let resp = app.post_async(r#"{"n":1}"#).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    let id = resp.json::<serde_json::Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(link, format!("</tickets/{id}/events>; rel=\"monitor\""));

    let resp = open(&app, &id, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let mut events = SseReader::new(resp);
    let queued = events.event(SOON).await.expect("the current status first");
    assert_eq!(queued.event.as_deref(), Some("queued"));
    assert_eq!(queued.json()["ticket_id"], id.as_str());
    assert_eq!(queued.json()["status"], "queued");
    let queued_id = queued.id.clone().unwrap();
    assert!(queued_id.ends_with(".queued"), "{queued_id}");

    // A second stream resuming after `queued` does not repeat it.
    let mut resumed = SseReader::new(open(&app, &id, Some(&queued_id)).await);
    // The client cancels: both streams get `failed`, then end.
    let cancel = app
        .client
        .delete(format!("{}/tickets/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    for stream in [&mut events, &mut resumed] {
        let failed = stream.event(SOON).await.expect("the terminal event");
        assert_eq!(failed.event.as_deref(), Some("failed"), "{failed:?}");
        assert_eq!(failed.json()["error"]["kind"], "cancelled");
        assert!(
            stream.next(SOON).await.is_none(),
            "ends after the terminal event"
        );
    }
    // Reconnecting after the terminal event: 204, so EventSource stops.
    let failed_id = {
        let t = app.store.get(&id.parse().unwrap()).await.unwrap().unwrap();
        format!("{}.failed", t.version)
    };
    assert_eq!(open(&app, &id, Some(&failed_id)).await.status(), 204);
    // Without Last-Event-ID, a finished ticket's stream is its end.
    let mut late = SseReader::new(open(&app, &id, None).await);
    assert_eq!(
        late.event(SOON).await.unwrap().event.as_deref(),
        Some("failed")
    );
    assert!(late.next(SOON).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_by_another_process_is_read_from_the_store() {
    let app = spawn_app_waiting().await;
    let id = app.accepted().await;
    let mut events = SseReader::new(open(&app, &id, None).await);
    assert_eq!(
        events.event(SOON).await.unwrap().event.as_deref(),
        Some("queued")
    );
    // Written straight to the file, as the operator's tool does: no
    // in-process wake-up, only the stream's own reads see it.
    let t = app.store.get(&id.parse().unwrap()).await.unwrap().unwrap();
    let cancelled = t
        .cancel(t.updated_at + 1, "operator:other-process")
        .unwrap();
    app.store
        .update(&cancelled, Status::Queued, t.version)
        .await
        .unwrap();
    let failed = events.event(SOON).await.unwrap();
    assert_eq!(failed.event.as_deref(), Some("failed"));
    assert!(events.next(SOON).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_sends_a_heartbeat_comment() {
    let app = spawn_app_waiting().await;
    let id = app.accepted().await;
    let mut events = SseReader::new(open(&app, &id, None).await);
    assert_eq!(
        events.next(SOON).await.unwrap().event.as_deref(),
        Some("queued")
    );
    let beat = events.next(Duration::from_secs(20)).await.unwrap();
    assert_eq!(beat.comment.as_deref(), Some("heartbeat"), "{beat:?}");
    assert!(beat.event.is_none() && beat.data.is_empty());
}

#[tokio::test]
async fn bad_streams_are_refused_with_problems() {
    let app = spawn_app_waiting().await;
    let id = app.accepted().await;
    for (ticket, last, status) in [
        ("not-a-ticket", None, 400),
        ("01920000-0000-7000-8000-000000000000", None, 404),
        (id.as_str(), Some("queued"), 400),
        (id.as_str(), Some("7.finished"), 400),
    ] {
        let resp = open(&app, ticket, last).await;
        assert_eq!(resp.status(), status, "{ticket} {last:?}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
}
