//! Lanes over HTTP: the lane a request gets, the client's header where it
//! is (and is not) allowed, a lane outside its window, and `/health`.

use std::sync::Arc;

use failover_core::lane::Lanes;
use failover_core::Policy;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_with, test_policy, TestApp};
use serde_json::Value;

const RULES: &str = r#"[{"lane":"critical","pointer":"/amount","gte":10000}]"#;

async fn app(windows: Option<&str>, client_choice: bool) -> TestApp {
    let mut lanes = Lanes::default();
    lanes.set_rules(RULES).expect("rules");
    if let Some(w) = windows {
        lanes.set_windows(w).expect("windows");
    }
    lanes.client_choice = client_choice;
    let policy = Policy {
        lanes: Arc::new(lanes),
        ..test_policy()
    };
    spawn_app_with(policy, Behaviour::ok(r#"{"ok":true}"#)).await
}

async fn queued(app: &TestApp, body: &str, lane: Option<&str>) -> (u16, Value) {
    let mut req = app.post_async(body);
    if let Some(l) = lane {
        req = req.header("failover-lane", l);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_rules_pick_the_lane_and_the_client_only_where_allowed() {
    let app = app(None, false).await;
    let (status, b) = queued(&app, r#"{"amount": 20000}"#, None).await;
    assert_eq!(status, 202);
    let id = b["ticket_id"].as_str().unwrap();
    assert_eq!(app.ticket(id).await["lane"], "critical");
    // Not allowed: the header changes nothing, whatever it says.
    for header in ["bulk", "not-a-lane"] {
        let (status, b) = queued(&app, r#"{"amount": 20000}"#, Some(header)).await;
        assert_eq!(status, 202);
        let t = app.ticket(b["ticket_id"].as_str().unwrap()).await;
        assert_eq!(
            (t["lane"].as_str(), &t["not_before"]),
            (Some("critical"), &Value::Null)
        );
    }
    // Allowed: it decides, and must name a lane.
    let open = app_allowing().await;
    let (status, b) = queued(&open, r#"{"amount": 20000}"#, Some("bulk")).await;
    assert_eq!(status, 202);
    assert_eq!(
        open.ticket(b["ticket_id"].as_str().unwrap()).await["lane"],
        "bulk"
    );
    let resp = open
        .post_async(r#"{"amount": 1}"#)
        .header("failover-lane", "urgent")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: Value = resp.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("critical, normal, bulk"),
        "{problem}"
    );
}

async fn app_allowing() -> TestApp {
    app(None, true).await
}

#[tokio::test]
async fn a_lane_outside_its_window_is_queued_with_its_opening() {
    // Critical's only window: one minute, two hours from now (UTC).
    let windows = failover_tests::spawn::window_in_two_hours("critical");
    let app = app(Some(&windows), false).await;
    // Not even a sync attempt, though the backend is healthy.
    let resp = app.post(r#"{"amount": 20000}"#).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((7100..=7260).contains(&retry), "{retry}");
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["reason"], "scheduled");
    let id = b["ticket_id"].as_str().unwrap();
    let resp = app.get(&format!("/tickets/{id}")).await;
    let polled: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((7000..=7260).contains(&polled), "{polled}");
    let t: Value = resp.json().await.unwrap();
    assert!(
        t["not_before"].as_str().unwrap().ends_with(":00.000Z"),
        "{t}"
    );
    assert!(app.backend.calls().is_empty());
    // Normal requests go on as ever.
    let normal = app.post(r#"{"amount": 1}"#).send().await.unwrap();
    assert_eq!(normal.status(), 200);
    // `/health` says which lane waits and until when.
    let health: Value = app.get("/health").await.json().await.unwrap();
    let lanes = &health["queue"]["lanes"];
    assert_eq!(lanes[0]["lane"], "critical", "{health}");
    assert_eq!(lanes[0]["depth"], 1, "{health}");
    assert_eq!(lanes[0]["open"], false, "{health}");
    assert_eq!(lanes[0]["opens_at"], t["not_before"], "{health}");
    assert!(
        lanes[1].get("open").is_none(),
        "normal has no windows: {health}"
    );
}

#[tokio::test]
async fn a_route_sets_the_lane_its_rules_do_not() {
    let routes = r#"
[[route]]
name = "export"
method = "POST"
path = "/exports"
backend = "http://127.0.0.1:9/exports"
lane = "bulk"
"#;
    let mut lanes = Lanes::default();
    lanes.set_rules(RULES).expect("rules");
    let policy = Policy {
        lanes: Arc::new(lanes),
        ..test_policy()
    };
    let app = failover_tests::spawn::spawn_app_routed(policy, routes).await;
    for (body, lane) in [
        (r#"{"amount": 1}"#, "bulk"),
        (r#"{"amount": 50000}"#, "critical"),
    ] {
        let resp = app
            .client
            .post(format!("{}/exports", app.base))
            .header("content-type", "application/json")
            .header("prefer", "respond-async")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let b: Value = resp.json().await.unwrap();
        let t = app.ticket(b["ticket_id"].as_str().unwrap()).await;
        assert_eq!(t["lane"], lane, "{body}");
    }
}
