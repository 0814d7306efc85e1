//! The tool on a running local gateway's data directory.

use std::time::Duration;

use failover_core::Policy;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_waiting, spawn_app_with, test_policy, TestApp};
use serde_json::Value;

use crate::{failover, Run};

fn env(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![("DATA_DIR", app.data_dir().display().to_string())]
}

async fn run(app: &TestApp, args: &[&str]) -> Run {
    failover(&env(app), args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_show_what_is_stored() {
    let app = spawn_app_waiting().await;
    let a = app.accepted().await;
    let b = app.accepted().await;
    let listed = run(&app, &["tickets", "list", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let rows = listed.json();
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()], "newest first");
    let row = &rows[0];
    for key in [
        "status",
        "reason",
        "lane",
        "route",
        "attempts",
        "created_at",
        "error_kind",
    ] {
        assert!(row.get(key).is_some(), "{key} missing: {row}");
    }
    assert_eq!(row["status"], "queued");
    // Filters, and a table for people.
    let none = run(&app, &["tickets", "list", "--status", "failed", "--json"]).await;
    assert_eq!(none.json(), serde_json::json!([]));
    let young = run(&app, &["tickets", "list", "--older-than", "1h", "--json"]).await;
    assert_eq!(young.json(), serde_json::json!([]));
    let table = run(&app, &["tickets", "list", "--lane", "normal", "--max", "1"]).await;
    assert!(table.stdout.starts_with("ID "), "{table:?}");
    assert!(
        table.stdout.contains(&b) && !table.stdout.contains(&a),
        "{table:?}"
    );
    let shown = run(&app, &["tickets", "show", &a, "--json"]).await;
    assert_eq!(shown.code, 0);
    assert_eq!(shown.json()["id"], a.as_str());
    assert_eq!(shown.json()["request"]["route"], "requests");
    // Refusals: a bad filter or id is a usage error, an unknown id is not found.
    assert_eq!(
        run(&app, &["tickets", "list", "--status", "lost"])
            .await
            .code,
        2
    );
    assert_eq!(
        run(&app, &["tickets", "list", "--older-than", "1 week"])
            .await
            .code,
        2
    );
    assert_eq!(run(&app, &["tickets", "show", "nope"]).await.code, 2);
    let unknown = run(
        &app,
        &["tickets", "show", "0190a5b2-7c3e-7d4a-9b1f-2c3d4e5f6a7b"],
    )
    .await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    // No database where the server keeps none.
    let nowhere = failover(&[("DATA_DIR", "/nonexistent".into())], &["tickets", "list"]).await;
    assert_eq!(nowhere.code, 3);
    assert!(nowhere.stderr.contains("no database"), "{nowhere:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_is_recorded_notified_and_bounded() {
    let app = spawn_app_waiting().await;
    let (a, b, c) = (
        app.accepted().await,
        app.accepted().await,
        app.accepted().await,
    );
    // More than one, from a script: not without --yes; --dry-run changes nothing.
    let asked = run(&app, &["tickets", "cancel", &a, &b]).await;
    assert_eq!(asked.code, 2, "{asked:?}");
    assert!(asked.stderr.contains("--yes"), "{asked:?}");
    let dry = run(&app, &["tickets", "cancel", &a, &b, "--dry-run", "--json"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(dry.json()["dry_run"], true);
    for id in [&a, &b] {
        assert_eq!(app.ticket(id).await["status"], "queued");
    }
    let done = run(
        &app,
        &[
            "tickets", "cancel", &a, &b, &c, "--yes", "--max", "2", "--json",
        ],
    )
    .await;
    assert_eq!(done.code, 0, "{done:?}");
    let results = done.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2, "--max bounds it");
    assert!(results
        .iter()
        .all(|r| r["ok"] == true && r["status"] == "failed"));
    assert_eq!(app.ticket(&c).await["status"], "queued");
    // Logged, besides the record on the ticket.
    let logged = done
        .stderr
        .lines()
        .filter(|l| l.contains("operator action"));
    let cancels = logged.filter(|l| l.contains(r#"action="cancel" by="operator:tester""#));
    assert_eq!(cancels.count(), 2, "{done:?}");
    let shown = run(&app, &["tickets", "show", &a, "--json"]).await.json();
    assert_eq!(shown["error"]["kind"], "cancelled");
    assert_eq!(shown["actions"][0]["by"], "operator:tester");
    assert_eq!(shown["actions"][0]["what"], "cancel");
    // A second cancel is refused, with the reason, and exit code 1.
    let again = run(&app, &["tickets", "cancel", &a]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stdout.contains("only a queued ticket"), "{again:?}");
    // Notified at once, and never sent to the backend.
    app.wait_for(&a, |t| t["delivery"]["sns"] == "delivered")
        .await;
    assert!(app.backend.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_ticket_cannot_be_cancelled() {
    let app = spawn_app_with(test_policy(), Behaviour::Hang).await;
    let id = app.accepted().await;
    app.wait_for(&id, |t| t["status"] == "processing").await;
    let refused = run(&app, &["tickets", "cancel", &id]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("is processing"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ticket_runs_again_under_the_same_key_and_is_notified_again() {
    let policy = Policy {
        max_attempts: 1,
        ..test_policy()
    };
    let app = spawn_app_with(policy, Behaviour::status(503, "down")).await;
    let id = app.accepted().await;
    let failed = app.wait_terminal(&id).await;
    assert_eq!(failed["error"]["kind"], "exhausted", "{failed}");
    // A succeeded ticket cannot be retried; this one can, once it is fixed.
    app.backend.set_default(Behaviour::ok(r#"{"paid":true}"#));
    let retried = run(&app, &["tickets", "retry", &id]).await;
    assert_eq!(retried.code, 0, "{retried:?}");
    let done = app.wait_for(&id, |t| t["status"] == "succeeded").await;
    assert_eq!(done["attempts"], 1, "a fresh attempt budget: {done}");
    let keys = app.backend.idempotency_keys();
    assert_eq!(keys, vec![Some(id.clone()); 2], "the same Idempotency-Key");
    let again = run(&app, &["tickets", "retry", &id]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stdout.contains("already has its answer"), "{again:?}");
    // Both outcomes were published, each under its own event id.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<_> = app
            .store
            .publications()
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.body.contains(&id))
            .map(|p| (p.event_id, p.status))
            .collect();
        if events.len() == 2 {
            assert_ne!(events[0].0, events[1].0);
            assert_eq!(
                (events[0].1.as_str(), events[1].1.as_str()),
                ("failed", "succeeded")
            );
            break;
        }
        assert!(tokio::time::Instant::now() < until, "{events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_by_time_takes_what_failed_since_and_leaves_rejections() {
    let policy = Policy {
        max_attempts: 1,
        ..test_policy()
    };
    let app = spawn_app_with(policy, Behaviour::status(503, "down")).await;
    let (a, b) = (app.accepted().await, app.accepted().await);
    for id in [&a, &b] {
        app.wait_terminal(id).await;
    }
    app.backend.set_default(Behaviour::status(422, "no"));
    let rejected = app.accepted().await;
    app.wait_terminal(&rejected).await;
    app.backend.set_default(Behaviour::ok("{}"));
    let dry = run(
        &app,
        &[
            "tickets",
            "retry",
            "--failed-since",
            "10m",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    let would: Vec<_> = dry.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(would.len(), 2, "{dry:?}");
    assert!(!would.contains(&rejected), "a rejection only when asked");
    let done = run(
        &app,
        &["tickets", "retry", "--failed-since", "10m", "--yes"],
    )
    .await;
    assert_eq!(done.code, 0, "{done:?}");
    for id in [&a, &b] {
        app.wait_for(id, |t| t["status"] == "succeeded").await;
    }
    assert_eq!(app.ticket(&rejected).await["error"]["kind"], "rejected");
    let forced = run(&app, &["tickets", "retry", &rejected, "--include-rejected"]).await;
    assert_eq!(forced.code, 0, "{forced:?}");
    app.wait_for(&rejected, |t| t["status"] == "succeeded")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_why_and_moved_back() {
    use failover_core::ports::{Priority, Queue};
    let app = spawn_app_with(test_policy(), Behaviour::ok("{}")).await;
    app.store
        .send("garbage", Priority::normal(0), Duration::ZERO)
        .await
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = run(&app, &["dlq", "list", "--json"]).await;
        if listed.json().as_array().is_some_and(|a| !a.is_empty()) {
            break listed.json();
        }
        assert!(tokio::time::Instant::now() < until, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed[0]["body"], "garbage");
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unparseable"),
        "{listed}"
    );
    assert_eq!(listed[0]["ticket_id"], Value::Null);
    let table = run(&app, &["dlq", "list"]).await;
    assert!(table.stdout.contains("(not a message)"), "{table:?}");
    let dry = run(&app, &["dlq", "redrive", "--dry-run", "--json"]).await;
    assert_eq!(dry.json()["would_move"], 1);
    let moved = run(&app, &["dlq", "redrive", "--json"]).await;
    assert_eq!(
        (moved.code, moved.json()["moved"].clone()),
        (0, 1.into()),
        "{moved:?}"
    );
}
