//! Lanes on AWS: a queue per lane, each polled by its own event source
//! mapping (emulated here, lowest lane first, as nothing orders them), and
//! a worker that holds a lane back while a higher one has work ready.

use std::time::{Duration, Instant};

use failover_core::lane::Lane;
use failover_core::ticket::Reason;
use serde_json::Value;

use aws_sdk_sqs::types::Message;

use crate::stack::{body, failures, queue_arn, Stack};

const RULES: &str = r#"[{"lane":"critical","pointer":"/amount","gte":10000},{"lane":"bulk","pointer":"/kind","eq":"report"}]"#;

fn request(lane: Lane, i: usize) -> String {
    match lane {
        Lane::Critical => format!(r#"{{"amount":{},"i":{i}}}"#, 10_000 + i),
        Lane::Normal => format!(r#"{{"amount":{i},"i":{i}}}"#),
        Lane::Bulk => format!(r#"{{"kind":"report","i":{i}}}"#),
    }
}

fn lane_of(body: &str) -> Lane {
    let v: Value = serde_json::from_str(body).expect("JSON");
    match (v["amount"].as_u64(), v["kind"].as_str()) {
        (Some(a), _) if a >= 10_000 => Lane::Critical,
        (_, Some("report")) => Lane::Bulk,
        _ => Lane::Normal,
    }
}

fn queue_of(s: &Stack, lane: Lane) -> String {
    match lane {
        Lane::Normal => s.env.queue_url.clone(),
        l => s
            .env
            .lane_queues
            .iter()
            .find(|q| q.0 == l)
            .expect("queue")
            .1
            .clone(),
    }
}

/// What an event source mapping does with a batch: hands it to the worker,
/// then deletes every message the worker did not report as failed.
async fn mapping_delivers(s: &Stack, url: &str, arn: &str, messages: &[Message]) {
    let batch = s.work_on(messages, arn).await;
    let failed = failures(&batch);
    for m in messages {
        let id = m.message_id.clone().unwrap_or_default();
        if !failed.contains(&id) {
            let handle = m.receipt_handle.clone().unwrap_or_default();
            let deleted = s.sqs.delete_message().queue_url(url).receipt_handle(handle);
            deleted.send().await.expect("delete");
        }
    }
}

/// Receives what a lane's queue has ready now, as its mapping would.
async fn ready(s: &Stack, url: &str) -> Vec<Message> {
    s.sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(30)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_backlog_drains_critical_then_normal_then_bulk() {
    let rules = [("PRIORITY_RULES", RULES.to_string())];
    let s = Stack::start_with(&rules, &rules).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        for lane in [Lane::Bulk, Lane::Normal, Lane::Critical] {
            let resp = s
                .post(&[("prefer", "respond-async")], &request(lane, i))
                .await;
            assert_eq!(resp["statusCode"], 202, "{resp}");
            let ticket = body(&resp)["ticket_id"].as_str().expect("id").to_string();
            assert_eq!(s.ticket(&ticket).await.request.lane, lane);
            ids.push(ticket);
        }
    }
    // Each lane's mapping takes what its queue has, bulk's first.
    let mut mappings = Vec::new();
    for lane in [Lane::Bulk, Lane::Normal, Lane::Critical] {
        let url = queue_of(&s, lane);
        mappings.push((url.clone(), queue_arn(&s.sqs, &url).await));
    }
    let until = Instant::now() + Duration::from_secs(120);
    while s.backend.calls().len() < 12 {
        assert!(Instant::now() < until, "{} calls", s.backend.calls().len());
        for (url, arn) in &mappings {
            let messages = ready(&s, url).await;
            if !messages.is_empty() {
                mapping_delivers(&s, url, arn, &messages).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let called: Vec<Lane> = s.backend.calls().iter().map(|c| lane_of(&c.body)).collect();
    let last = |lane| called.iter().rposition(|l| *l == lane).expect("called");
    let first = |lane| called.iter().position(|l| *l == lane).expect("called");
    assert!(last(Lane::Critical) < first(Lane::Normal), "{called:?}");
    assert!(last(Lane::Normal) < first(Lane::Bulk), "{called:?}");
    // Held back by re-sending, not by hiding: no receive counted against
    // the dead-letter limit, one attempt each.
    for id in &ids {
        let t = s.ticket(id).await;
        assert_eq!((t.status.as_str(), t.attempts), ("succeeded", 1), "{t:?}");
    }
    let health = body(&s.get("/health", "").await);
    let lanes = &health["queue"]["lanes"];
    assert_eq!(lanes[0]["lane"], "critical", "{health}");
    assert_eq!(lanes[2]["oldest_age_ms"], Value::Null, "SQS cannot tell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_outside_its_window_is_queued_at_once_and_not_run() {
    // A window of an hour, starting two hours from now (UTC).
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 60;
    let at = |h: u64| {
        let m = (minute + h * 60) % 1440;
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let windows = format!(r#"{{"bulk":["{}-{} UTC"]}}"#, at(2), at(3));
    let vars = [
        ("PRIORITY_RULES", RULES.to_string()),
        ("LANE_WINDOWS", windows),
    ];
    let s = Stack::start_with(&vars, &vars).await;
    let resp = s.post(&[], &request(Lane::Bulk, 1)).await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let b = body(&resp);
    assert_eq!(b["reason"], Reason::Scheduled.as_str());
    let retry: u64 = resp["headers"]["retry-after"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((3500..=7300).contains(&retry), "{retry}");
    let id = b["ticket_id"].as_str().expect("id");
    let view = body(&s.get(&format!("/tickets/{id}"), "").await);
    assert_eq!(view["lane"], "bulk");
    assert!(view["not_before"].as_str().is_some(), "{view}");
    // Its message waits in the bulk queue (delayed), and nothing calls the
    // backend; a normal request meanwhile is answered at once.
    let normal = s.post(&[], &request(Lane::Normal, 2)).await;
    assert_eq!(normal["statusCode"], 200, "{normal}");
    let bulk = queue_of(&s, Lane::Bulk);
    assert!(
        s.receive_from(&bulk).await.is_empty(),
        "not visible before its window"
    );
    assert_eq!(s.backend.calls().len(), 1);
    assert_eq!(s.ticket(id).await.attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_waits_for_its_window_and_then_drains() {
    // A window from the next whole minute (at least 5 s away) to the one
    // after, UTC: the test waits for it, up to a minute.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    let opens_min = (now() + 5_000) / 60_000 + 1;
    let at = |m: u64| format!("{:02}:{:02}", (m % 1440) / 60, m % 60);
    let windows = format!(
        r#"{{"bulk":["{}-{} UTC"]}}"#,
        at(opens_min),
        at(opens_min + 1)
    );
    let vars = [
        ("PRIORITY_RULES", RULES.to_string()),
        ("LANE_WINDOWS", windows),
    ];
    let s = Stack::start_with(&vars, &vars).await;
    let resp = s.post(&[], &request(Lane::Bulk, 1)).await;
    assert_eq!(body(&resp)["reason"], "scheduled", "{resp}");
    let id = body(&resp)["ticket_id"].as_str().expect("id").to_string();
    let bulk = queue_of(&s, Lane::Bulk);
    let arn = queue_arn(&s.sqs, &bulk).await;
    let opens_ms = opens_min * 60_000;
    let until = Instant::now() + Duration::from_secs(100);
    loop {
        let messages = ready(&s, &bulk).await;
        assert!(
            messages.is_empty() || now() >= opens_ms,
            "visible before its window"
        );
        if !messages.is_empty() {
            mapping_delivers(&s, &bulk, &arn, &messages).await;
        }
        let t = s.ticket(&id).await;
        if t.status.is_terminal() {
            assert_eq!((t.status.as_str(), t.attempts), ("succeeded", 1), "{t:?}");
            assert!(
                t.updated_at as u64 >= opens_ms,
                "ran before its window: {t:?}"
            );
            break;
        }
        assert!(Instant::now() < until, "never ran: {t:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(s.backend.calls().len(), 1);
}
