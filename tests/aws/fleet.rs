//! The breaker across a fleet: two `api` function instances (separate
//! processes, as two Lambda execution environments are) sharing one
//! DynamoDB table act as one breaker; without the table, each still works.

use std::time::{Duration, Instant};

use failover_lambda::Handler;
use failover_tests::events;
use failover_tests::lambda_runtime::LambdaHarness;
use failover_tests::mock_backend::Behaviour;
use serde_json::Value;

use crate::stack::{body, function_env, Stack};

fn breaker_env() -> Vec<(&'static str, String)> {
    vec![
        ("BREAKER_MIN_CALLS", "5".into()),
        ("BREAKER_OPEN_MS", "1500".into()),
        ("BREAKER_CLOSE_AFTER", "2".into()),
        ("HEALTH_CACHE_MS", "200".into()),
    ]
}

async fn post(api: &LambdaHarness) -> Value {
    let h = [("content-type", "application/json")];
    let event = events::http_api("POST", "/requests", "", &h, Some(r#"{"amount":5}"#));
    api.invoke(event, Duration::from_secs(10))
        .await
        .expect("api answered")
}

async fn health(api: &LambdaHarness) -> Value {
    let event = events::http_api("GET", "/health", "", &[], None);
    body(
        &api.invoke(event, Duration::from_secs(10))
            .await
            .expect("api answered"),
    )
}

/// Posts through `api` until it answers sync (200), for at most `limit`.
async fn until_sync(api: &LambdaHarness, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if post(api).await["statusCode"] == 200 {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still async after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_instances_share_one_breaker() {
    let s = Stack::start_with(&breaker_env(), &[]).await;
    let env = [function_env(&s.env, &s.backend.url), breaker_env()].concat();
    let b = s.functions.start(Handler::Api, &env).await;
    assert_eq!(post(&b).await["statusCode"], 200, "B starts healthy");

    // Five failures through A alone open the fleet's breaker...
    s.backend.set_default(Behaviour::status(503, "{}"));
    for _ in 0..5 {
        let resp = s.post(&[], r#"{"amount":5}"#).await;
        assert_eq!(body(&resp)["reason"], "backend_error", "{resp}");
    }
    let calls = s.backend.calls().len();
    // ...so B, which never saw a failure, fails over without calling the
    // backend once its copy of the breaker expires (200 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = post(&b).await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    assert_eq!(body(&resp)["reason"], "circuit_open", "{resp}");
    assert_eq!(s.backend.calls().len(), calls, "B did not call the backend");
    let h = health(&b).await;
    assert_eq!(h["mode"], "async", "{h}");
    assert_eq!(h["breaker"]["state"], "open", "{h}");
    assert_eq!(h["breaker"]["scope"], "fleet", "{h}");
    // SQS cannot tell its oldest message's age; the tickets can.
    assert!(h["queue"]["depth"].as_u64() >= Some(6), "{h}");
    assert!(h["queue"]["oldest_age_ms"].as_u64() >= Some(300), "{h}");

    // Recovery: probes through B close it (2 healthy probes after 1.5 s),
    // and A follows within its cache period without seeing a probe itself.
    s.backend.set_default(Behaviour::ok(r#"{"ok":true}"#));
    until_sync(&b, Duration::from_secs(10)).await;
    until_sync(&b, Duration::from_secs(5)).await;
    let h = health(&b).await;
    assert_eq!(h["breaker"]["state"], "closed", "{h}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = s.get("/health", "").await;
    let a = body(&a);
    assert_eq!(
        (a["mode"].as_str(), a["breaker"]["state"].as_str()),
        (Some("sync"), Some("closed")),
        "{a}"
    );
    // One breaker: open, half-open, closed, written once each.
    assert_eq!(a["breaker"]["transitions"], 3, "{a}");
    assert_eq!(s.post(&[], "{}").await["statusCode"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_health_store_each_instance_keeps_its_own_breaker() {
    let extra = [
        ("BREAKER_MIN_CALLS", "5".into()),
        ("AWS_ENDPOINT_URL_DYNAMODB", crate::faults::closed_port()),
    ];
    let s = Stack::start_with(&extra, &[]).await;
    // Sync answers need no table: they keep flowing.
    assert_eq!(s.post(&[], "{}").await["statusCode"], 200);
    let h = body(&s.get("/health", "").await);
    assert_eq!(h["breaker"]["scope"], "instance", "{h}");
    assert!(h["breaker"]["store_error"].is_string(), "{h}");
    // And a sick backend still opens this instance's breaker: after a few
    // failures requests no longer call the backend. (They cannot be queued
    // either, without the table: an honest 503.)
    s.backend.set_default(Behaviour::Hang);
    for _ in 0..5 {
        s.post(&[], "{}").await;
    }
    let calls = s.backend.calls().len();
    let h = body(&s.get("/health", "").await);
    assert_eq!(h["breaker"]["state"], "open", "{h}");
    assert_eq!(s.post(&[], "{}").await["statusCode"], 503);
    assert_eq!(s.backend.calls().len(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_sheds_load_above_sync_max_inflight() {
    // Each instance runs one call at a time, so neither alone ever exceeds
    // SYNC_MAX_INFLIGHT=1; together they keep about two calls in flight.
    let extra = [
        ("SYNC_MAX_INFLIGHT", "1".to_string()),
        ("HEALTH_CACHE_MS", "200".to_string()),
    ];
    let s = Stack::start_with(&extra, &[]).await;
    s.backend
        .set_default(Behaviour::slow(200, "{}", Duration::from_millis(200)));
    let env = [function_env(&s.env, &s.backend.url), extra.to_vec()].concat();
    let b = s.functions.start(Handler::Api, &env).await;
    let b = std::sync::Arc::new(b);
    let until = Instant::now() + Duration::from_secs(6);
    let from_b = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while Instant::now() < until {
                answers.push(post(&b).await);
            }
            answers
        })
    };
    let mut answers = Vec::new();
    while Instant::now() < until {
        answers.push(s.post(&[], "{}").await);
    }
    answers.extend(from_b.await.expect("join"));
    let overloaded = answers
        .iter()
        .filter(|r| body(r)["reason"] == "overloaded")
        .count();
    let sync = answers.iter().filter(|r| r["statusCode"] == 200).count();
    assert!(
        overloaded > 0,
        "none shed of {} ({sync} sync)",
        answers.len()
    );
    assert!(sync > overloaded, "{sync} sync, {overloaded} shed");
    let h = health(&b).await;
    let load = h["breaker"]["fleet_inflight"].as_f64().unwrap_or(0.0);
    assert!(load > 0.5, "{h}");
    assert_eq!(h["breaker"]["state"], "closed", "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_open_the_worker_function_resends_a_long_deferral() {
    // The api function opens the fleet's breaker for two minutes; the worker
    // function, sharing the table, sees it open and defers its message.
    let extra = [
        ("BREAKER_MIN_CALLS", "3".to_string()),
        ("BREAKER_OPEN_MS", "120000".to_string()),
    ];
    let s = Stack::start_with(&extra, &extra).await;
    s.backend.set_default(Behaviour::status(503, "{}"));
    for _ in 0..3 {
        s.post(&[], "{}").await;
    }
    let messages = s.receive().await;
    assert_eq!(messages.len(), 3);
    let calls = s.backend.calls().len();
    let batch = s.work(&messages[..1]).await;
    // A two-minute wait is not a visibility change (which would count as a
    // receive toward the DLQ) but a delayed copy, so the record is done.
    assert!(crate::stack::failures(&batch).is_empty(), "{batch}");
    assert_eq!(s.backend.calls().len(), calls, "no attempt while open");
    let delayed = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed;
    let attrs = s
        .sqs
        .get_queue_attributes()
        .queue_url(&s.env.queue_url)
        .attribute_names(delayed.clone())
        .send()
        .await
        .expect("queue attributes");
    let count = attrs
        .attributes()
        .and_then(|a| a.get(&delayed))
        .map(String::as_str);
    assert_eq!(count, Some("1"), "{attrs:?}");
    let msg: serde_json::Value =
        serde_json::from_str(messages[0].body().unwrap_or_default()).expect("message body");
    let ticket = s
        .ticket(msg["ticket_id"].as_str().expect("ticket id"))
        .await;
    assert_eq!(
        (ticket.status, ticket.attempts),
        (failover_core::ticket::Status::Queued, 0)
    );
}
