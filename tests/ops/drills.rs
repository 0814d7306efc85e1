//! Drills from the tool on a running local gateway: it switches within one
//! health-cache period, shows on `/health`, and reverts by itself.

use std::time::{Duration, Instant};

use failover_core::Policy;
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_with, test_policy, TestApp};
use serde_json::Value;

use crate::{failover, Run};

const CACHE: Duration = Duration::from_millis(200);

async fn app(policy: Policy, backend: Behaviour) -> TestApp {
    let policy = Policy {
        health_cache: CACHE,
        ..policy
    };
    spawn_app_with(policy, backend).await
}

async fn run(app: &TestApp, args: &[&str]) -> Run {
    let env = [("DATA_DIR", app.data_dir().display().to_string())];
    failover(&env, args).await
}

/// Posts until the answer's reason is `reason` (`None`: answered sync);
/// how long that took.
async fn until(app: &TestApp, reason: Option<&str>, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let resp = app.post(r#"{"n":1}"#).send().await.unwrap();
        let status = resp.status().as_u16();
        let b: Value = resp.json().await.unwrap_or(Value::Null);
        let got = (status == 202).then(|| b["reason"].as_str().unwrap_or("").to_string());
        if got.as_deref() == reason {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {status} {b} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_drill_switches_the_gateway_and_ends_by_itself() {
    let app = app(test_policy(), Behaviour::ok("{}")).await;
    until(&app, None, Duration::from_secs(2)).await;
    let started = run(&app, &["drill", "start", "--mode", "async", "--for", "3s"]).await;
    assert_eq!(started.code, 0, "{started:?}");
    let switched = until(&app, Some("forced"), Duration::from_secs(3)).await;
    assert!(switched < CACHE * 3, "switched after {switched:?}");
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["mode"], "async", "{health}");
    let drill = &health["drills"][0];
    assert_eq!(
        (drill["mode"].as_str(), drill["scope"].as_str()),
        (Some("async"), Some("all"))
    );
    assert_eq!(drill["by"], "operator:tester");
    assert!(drill["until"].is_string(), "{health}");
    let shown = run(&app, &["drill", "show", "--json"]).await.json();
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{shown}");
    // Back to sync on its own, at `until` (3 s after the start).
    let back = until(&app, None, Duration::from_secs(6)).await;
    assert!(back > Duration::from_millis(1500), "ended early: {back:?}");
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["drills"], serde_json::json!([]), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_drill_tries_every_request_while_the_breaker_is_open() {
    let policy = Policy {
        breaker_min_calls: 2,
        breaker_open: Duration::from_secs(60),
        ..test_policy()
    };
    let app = app(policy, Behaviour::status(503, "down")).await;
    until(&app, Some("circuit_open"), Duration::from_secs(5)).await;
    let calls = app.backend.calls().len();
    let route = [
        "drill", "start", "--mode", "sync", "--for", "1m", "--route", "requests",
    ];
    assert_eq!(run(&app, &route).await.code, 0);
    // Tried (and failed over as a backend error), not turned away.
    until(&app, Some("backend_error"), Duration::from_secs(3)).await;
    assert!(
        app.backend.calls().len() > calls,
        "the backend was not tried"
    );
    let stopped = run(&app, &["drill", "stop", "--json"]).await;
    assert_eq!(stopped.json()["stopped"], 1, "{stopped:?}");
    until(&app, Some("circuit_open"), Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_drills_are_refused() {
    let app = app(test_policy(), Behaviour::ok("{}")).await;
    let unknown = run(
        &app,
        &[
            "drill", "start", "--mode", "async", "--for", "1m", "--route", "nope",
        ],
    )
    .await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("no route \"nope\""), "{unknown:?}");
    let group = run(
        &app,
        &[
            "drill", "start", "--mode", "async", "--for", "1m", "--group", "nope",
        ],
    )
    .await;
    assert_eq!(group.code, 1, "{group:?}");
    for args in [
        ["drill", "start", "--mode", "async", "--for", "2d"],
        ["drill", "start", "--mode", "async", "--for", "0s"],
        ["drill", "start", "--mode", "auto", "--for", "1m"],
    ] {
        assert_eq!(run(&app, &args).await.code, 2, "{args:?}");
    }
    assert_eq!(
        run(&app, &["drill", "show", "--json"]).await.json(),
        serde_json::json!([])
    );
    until(&app, None, Duration::from_secs(1)).await;
}
