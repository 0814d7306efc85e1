//! A drill started from the operator's tool switches two `api` instances
//! (separate processes on one table) to async within one health-cache
//! period, and both revert by themselves when it ends.

use std::time::{Duration, Instant};

use failover_lambda::Handler;
use failover_tests::events;
use failover_tests::lambda_runtime::LambdaHarness;
use serde_json::Value;

use crate::stack::{body, function_env, Stack};

const CACHE_MS: u64 = 300;

async fn post(api: &LambdaHarness) -> Value {
    let h = [("content-type", "application/json")];
    let event = events::http_api("POST", "/requests", "", &h, Some(r#"{"n":1}"#));
    api.invoke(event, Duration::from_secs(10))
        .await
        .expect("api answered")
}

/// Posts through `api` until it answers with `reason` (`None`: 200).
async fn until(api: &LambdaHarness, reason: Option<&str>, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let resp = post(api).await;
        let got = (resp["statusCode"] == 202).then(|| body(&resp)["reason"].clone());
        if got.as_ref().and_then(Value::as_str) == reason
            && (reason.is_some() || resp["statusCode"] == 200)
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still {resp} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_switches_two_api_instances_and_ends_by_itself() {
    let extra = [("HEALTH_CACHE_MS", CACHE_MS.to_string())];
    let s = Stack::start_with(&extra, &[]).await;
    let env = [function_env(&s.env, &s.backend.url), extra.to_vec()].concat();
    let b = s.functions.start(Handler::Api, &env).await;
    for api in [&s.api, &b] {
        until(api, None, Duration::from_secs(5)).await;
    }
    let tool = failover_tests::tool::run(
        env!("CARGO_BIN_EXE_failover-under-test"),
        &env,
        &["drill", "start", "--mode", "async", "--for", "5s"],
    )
    .await;
    assert_eq!(tool.code, 0, "{tool:?}");
    let started = Instant::now();
    // Each instance reads the drills once per cache period, after a
    // request finds its copy stale: within a period and a request or two.
    for api in [&s.api, &b] {
        until(api, Some("forced"), Duration::from_secs(3)).await;
    }
    let switched = started.elapsed();
    assert!(
        switched < Duration::from_millis(CACHE_MS * 4),
        "{switched:?}"
    );
    let health = body(&s.get("/health", "").await);
    assert_eq!(health["mode"], "async", "{health}");
    assert_eq!(health["drills"][0]["by"], "operator:tester", "{health}");
    for api in [&s.api, &b] {
        until(api, None, Duration::from_secs(8)).await;
    }
    let ended = started.elapsed();
    assert!(ended > Duration::from_secs(4), "ended early: {ended:?}");
}
