//! The tool in AWS mode: the table and queues named in the environment, as
//! the functions have them, on the emulators.

use std::time::Duration;

use failover_adapters::aws::SqsQueue;
use failover_core::lane::Lane;
use failover_core::ports::{Priority, Queue, TicketStore};
use failover_tests::aws::{fresh, AwsEnv};
use failover_tests::conformance::sample_ticket;

use crate::failover;

fn env(e: &AwsEnv) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("TABLE_NAME", e.table.clone()),
        ("BODY_BUCKET", e.body_bucket.clone()),
        ("QUEUE_URL", e.queue_url.clone()),
        ("DLQ_URL", e.dlq_url.clone()),
    ];
    for (lane, url, dlq) in &e.lane_queues {
        let (q, d) = match lane {
            Lane::Critical => ("QUEUE_URL_CRITICAL", "DLQ_URL_CRITICAL"),
            _ => ("QUEUE_URL_BULK", "DLQ_URL_BULK"),
        };
        vars.push((q, url.clone()));
        vars.push((d, dlq.clone()));
    }
    vars
}

fn queue(e: &AwsEnv) -> SqsQueue {
    let sqs = aws_sdk_sqs::Client::new(&e.sdk);
    e.lane_queues.iter().fold(
        SqsQueue::new(sqs, e.queue_url.clone(), Some(e.dlq_url.clone())),
        |q, (lane, url, dlq)| q.with_lane(*lane, url.clone(), Some(dlq.clone())),
    )
}

#[tokio::test]
async fn tickets_are_listed_and_cancelled_in_the_table() {
    let e = fresh().await;
    let store = e.store();
    let (queued, other) = (sample_ticket(), sample_ticket());
    store.create(&queued).await.unwrap();
    store.create(&other).await.unwrap();
    let id = queued.id.to_string();
    let listed = failover(&env(&e), &["tickets", "list", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let ids: Vec<_> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert!(
        ids.contains(&id.clone().into()) && ids.len() == 2,
        "{listed:?}"
    );
    let cancelled = failover(&env(&e), &["tickets", "cancel", &id]).await;
    assert_eq!(cancelled.code, 0, "{cancelled:?}");
    let t = store.get(&queued.id).await.unwrap().unwrap();
    assert_eq!(t.error.map(|e| e.kind.as_str()), Some("cancelled"));
    assert_eq!(t.actions[0].by, "operator:tester");
    // A fresh message brings a worker to notify.
    let q = queue(&e);
    let got = q
        .receive(10, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(got.iter().any(|d| d.body.contains(&id)), "{got:?}");
    let again = failover(&env(&e), &["tickets", "cancel", &id]).await;
    assert_eq!(again.code, 1, "{again:?}");
}

#[tokio::test]
async fn dead_letters_are_listed_and_moved_back_on_sqs() {
    let e = fresh().await;
    let q = queue(&e);
    let critical = Priority {
        lane: Lane::Critical,
        since_ms: 0,
    };
    q.send("poison", critical, Duration::ZERO).await.unwrap();
    let d = q
        .receive(1, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    q.dead_letter(&d[0], "unparseable message").await.unwrap();
    let listed = failover(&env(&e), &["dlq", "list", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let rows = listed.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(
        (rows[0]["lane"].as_str(), rows[0]["reason"].as_str()),
        (Some("critical"), Some("unparseable message"))
    );
    let moved = failover(&env(&e), &["dlq", "redrive", "--json"]).await;
    assert_eq!(moved.json()["moved"], 1, "{moved:?}");
    let back = q
        .receive(1, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        (back[0].body.as_str(), back[0].priority.lane),
        ("poison", Lane::Critical)
    );
}

/// A stack whose outputs name the test's table and queues, as the SAM
/// template's do (the emulator's CloudFormation, with a resource that does
/// nothing).
async fn stack_naming(e: &AwsEnv) -> String {
    let name = format!(
        "failover-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let lane = |l: Lane| {
        e.lane_queues
            .iter()
            .find(|q| q.0 == l)
            .expect("lane")
            .clone()
    };
    let (_, critical, critical_dlq) = lane(Lane::Critical);
    let (_, bulk, bulk_dlq) = lane(Lane::Bulk);
    let outputs: serde_json::Map<String, serde_json::Value> = [
        ("TableName", e.table.clone()),
        ("BodyBucketName", e.body_bucket.clone()),
        ("QueueUrl", e.queue_url.clone()),
        ("DeadLetterQueueUrl", e.dlq_url.clone()),
        ("CriticalQueueUrl", critical),
        ("CriticalDeadLetterQueueUrl", critical_dlq),
        ("BulkQueueUrl", bulk),
        ("BulkDeadLetterQueueUrl", bulk_dlq),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::json!({ "Value": v })))
    .collect();
    let template = serde_json::json!({
        "Resources": { "Nothing": { "Type": "AWS::CloudFormation::WaitConditionHandle" } },
        "Outputs": outputs,
    });
    let cfn = aws_sdk_cloudformation::Client::new(&e.sdk);
    cfn.create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .expect("create stack");
    for _ in 0..100 {
        let out = cfn
            .describe_stacks()
            .stack_name(&name)
            .send()
            .await
            .expect("describe");
        let status = out.stacks()[0]
            .stack_status()
            .map(|s| s.as_str().to_string());
        if status.as_deref() == Some("CREATE_COMPLETE") {
            return name;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stack {name} never completed");
}

#[tokio::test]
async fn a_stack_s_outputs_name_the_table_and_queues() {
    let e = fresh().await;
    let name = stack_naming(&e).await;
    let t = sample_ticket();
    e.store().create(&t).await.unwrap();
    let listed = failover(&[], &["--stack", &name, "tickets", "list", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.json()[0]["id"], t.id.to_string(), "{listed:?}");
    let dead = failover(&[], &["--stack", &name, "dlq", "list", "--json"]).await;
    assert_eq!(
        (dead.code, dead.json()),
        (0, serde_json::json!([])),
        "{dead:?}"
    );
    let missing = failover(&[], &["--stack", "no-such-stack", "tickets", "list"]).await;
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(missing.stderr.contains("no-such-stack"), "{missing:?}");
}

#[tokio::test]
async fn the_fleet_breaker_is_shown_and_reset_in_the_table() {
    use failover_core::breaker::{Breaker, CallOutcome, HealthGate};
    let e = fresh().await;
    let policy = failover_core::Policy {
        breaker_min_calls: 2,
        breaker_open: Duration::from_secs(600),
        ..failover_core::Policy::default()
    };
    let clock = std::sync::Arc::new(failover_core::ports::SystemClock);
    let ttl = Duration::from_millis(200);
    let instance = Breaker::shared(
        &policy,
        std::sync::Arc::new(e.store().health("")),
        clock,
        ttl,
    );
    for _ in 0..3 {
        let a = instance.admit().await;
        instance
            .record(a, CallOutcome::Error, Duration::from_millis(3))
            .await;
    }
    assert_eq!(instance.snapshot().await.state, "open");
    let mut vars = env(&e);
    vars.push(("BREAKER_MIN_CALLS", "2".into()));
    let shown = failover(&vars, &["breaker", "show", "--json"]).await;
    assert_eq!(shown.code, 0, "{shown:?}");
    let b = &shown.json()[0];
    assert_eq!(b["group"], "default", "{shown:?}");
    assert_eq!(
        (
            b["breaker"]["state"].as_str(),
            b["breaker"]["scope"].as_str()
        ),
        (Some("open"), Some("fleet"))
    );
    let reset = failover(&vars, &["breaker", "reset", "--json"]).await;
    assert_eq!(reset.code, 0, "{reset:?}");
    assert_eq!(reset.json()[0]["breaker"]["state"], "closed", "{reset:?}");
    // Every instance within one cache period.
    tokio::time::sleep(ttl).await;
    assert_eq!(
        instance.admit().await,
        failover_core::breaker::Admission::Sync
    );
    let s = instance.snapshot().await;
    assert_eq!((s.state, s.transitions), ("closed", 2));
}

#[tokio::test]
async fn a_failed_ticket_is_shown_and_run_again_from_the_table() {
    use failover_core::ticket::{ErrorKind, Status, TicketError};
    let e = fresh().await;
    let store = e.store();
    let mut failed = sample_ticket();
    failed.status = Status::Failed;
    failed.attempts = 8;
    failed.error = Some(TicketError {
        kind: ErrorKind::Exhausted,
        message: "503 eight times".into(),
    });
    store.create(&failed).await.unwrap();
    let id = failed.id.to_string();
    let shown = failover(&env(&e), &["tickets", "show", &id, "--json"]).await;
    assert_eq!(shown.code, 0, "{shown:?}");
    assert_eq!(shown.json()["error"]["kind"], "exhausted", "{shown:?}");
    let listed = failover(
        &env(&e),
        &["tickets", "list", "--kind", "exhausted", "--json"],
    )
    .await;
    assert_eq!(
        listed.json().as_array().map(Vec::len),
        Some(1),
        "{listed:?}"
    );

    let retried = failover(&env(&e), &["tickets", "retry", &id]).await;
    assert_eq!(retried.code, 0, "{retried:?}");
    let t = store.get(&failed.id).await.unwrap().unwrap();
    assert_eq!((t.status, t.attempts, t.runs), (Status::Queued, 0, 1));
    assert_eq!(t.actions[0].what.as_str(), "retry");
    // Its message is on the queue, under the same ticket id.
    let got = queue(&e)
        .receive(10, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(got.iter().any(|d| d.body.contains(&id)), "{got:?}");
    // Queued again: not failed, so not retried twice.
    let again = failover(&env(&e), &["tickets", "retry", &id]).await;
    assert_eq!(again.code, 1, "{again:?}");
}
