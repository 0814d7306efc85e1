//! `failover breaker show|reset` on a running local gateway: the tool sees
//! the breakers the server posts, and a reset is taken within one
//! health-cache period (the tool waits for it); with no server running it
//! says so rather than pretending.

use std::time::Duration;

use failover_core::Policy;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_with, test_policy, TestApp};
use serde_json::Value;

use crate::{failover, Run};

async fn run(app: &TestApp, args: &[&str]) -> Run {
    let env = [("DATA_DIR", app.data_dir().display().to_string())];
    failover(&env, args).await
}

async fn breaker(app: &TestApp) -> Value {
    let health: Value = app.get("/health").await.json().await.unwrap();
    health["breaker"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_closes_the_gateway_s_breaker_within_a_period() {
    let policy = Policy {
        breaker_min_calls: 2,
        breaker_open: Duration::from_secs(600),
        health_cache: Duration::from_millis(200),
        ..test_policy()
    };
    let mut app = spawn_app_with(policy, Behaviour::status(503, "down")).await;
    for _ in 0..3 {
        app.post(r#"{"n":1}"#).send().await.unwrap();
    }
    assert_eq!(breaker(&app).await["state"], "open");
    // Posted within a period.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shown = run(&app, &["breaker", "show", "--json"]).await;
    assert_eq!(shown.code, 0, "{shown:?}");
    let group = shown.json()[0]["group"].as_str().unwrap().to_string();
    assert_eq!(shown.json()[0]["breaker"]["state"], "open", "{shown:?}");
    assert_eq!(shown.json()[0]["breaker"]["calls"], 2, "{shown:?}");
    let table = run(&app, &["breaker", "show"]).await;
    assert!(
        table.stdout.contains("GROUP") && table.stdout.contains(" open "),
        "{table:?}"
    );
    assert!(table.stderr.is_empty(), "{table:?}");

    let unknown = run(&app, &["breaker", "reset", "--group", "nope"]).await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("no breaker group"), "{unknown:?}");
    let dry = run(&app, &["breaker", "reset", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would reset the breaker of"), "{dry:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(breaker(&app).await["state"], "open", "a dry run changed it");

    // The backend is back: reset rather than wait out ten minutes.
    app.backend.set_default(Behaviour::ok("{}"));
    let reset = run(&app, &["breaker", "reset", "--group", &group, "--json"]).await;
    assert_eq!(reset.code, 0, "{reset:?}");
    assert_eq!(reset.json()[0]["breaker"]["state"], "closed", "{reset:?}");
    // Taken when the tool returns: the next request is answered at once.
    let resp = app.post(r#"{"n":2}"#).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let now = breaker(&app).await;
    assert_eq!(
        (now["state"].as_str(), now["transitions"].as_u64()),
        (Some("closed"), Some(2))
    );

    // No server: the tool says the reset was not taken, and the show is old.
    app.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let orphan = run(&app, &["breaker", "reset", "--yes"]).await;
    assert_eq!(orphan.code, 1, "{orphan:?}");
    assert!(
        orphan.stderr.contains("no gateway took the reset"),
        "{orphan:?}"
    );
    let old = run(&app, &["breaker", "show"]).await;
    assert_eq!(old.code, 0, "{old:?}");
    assert!(old.stderr.contains("none is running"), "{old:?}");
}
