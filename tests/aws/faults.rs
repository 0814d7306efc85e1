//! Faults in AWS mode: a store or queue that cannot be reached never turns
//! into a 202 for a request that could be lost, and never loses a message.

use failover_core::ticket::Status;
use failover_lambda::Handler;

use crate::stack::{body, failures, function_env, Stack};

pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

async fn items(s: &Stack) -> usize {
    aws_sdk_dynamodb::Client::new(&s.env.sdk)
        .scan()
        .table_name(&s.env.table)
        .send()
        .await
        .unwrap()
        .count as usize
}

fn assert_503(resp: &serde_json::Value) {
    assert_eq!(resp["statusCode"], 503, "{resp}");
    assert!(resp["headers"]["retry-after"].is_string(), "{resp}");
    assert_eq!(resp["headers"]["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_unreachable_during_capture_is_a_503_and_leaves_no_ticket() {
    let s = Stack::start_with(&[("AWS_ENDPOINT_URL_SQS", closed_port())], &[]).await;
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 1}"#)
        .await;
    assert_503(&resp);
    assert_eq!(items(&s).await, 0, "the ticket written first was undone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_during_capture_is_a_503_and_queues_nothing() {
    let s = Stack::start_with(&[("AWS_ENDPOINT_URL_DYNAMODB", closed_port())], &[]).await;
    s.backend
        .set_default(failover_tests::mock_backend::Behaviour::status(503, "{}"));
    let resp = s.post(&[], r#"{"amount": 2}"#).await;
    assert_503(&resp);
    assert!(s.receive().await.is_empty(), "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_in_the_worker_retries_the_message() {
    let s = Stack::start_with(&[], &[("AWS_ENDPOINT_URL_DYNAMODB", closed_port())]).await;
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 3}"#)
        .await;
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let messages = s.receive().await;
    let batch = s.work(&messages).await;
    assert_eq!(failures(&batch).len(), 1, "reported for retry: {batch}");
    assert_eq!(s.ticket(&id).await.status, Status::Queued);
    assert!(s.backend.calls().is_empty());

    // The store is back (a healthy worker instance): nothing was lost.
    let env = function_env(&s.env, &s.backend.url);
    let healthy = s.functions.start(Handler::Worker, &env).await;
    let mut again = Vec::new();
    for _ in 0..5 {
        again = s.receive().await;
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1, "the message came back");
    let event = failover_tests::events::sqs(&again, &s.queue_arn);
    let batch = healthy
        .invoke(event, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert!(failures(&batch).is_empty(), "{batch}");
    assert_eq!(s.ticket(&id).await.status, Status::Succeeded);
}

/// The worker reads its signing secret from Secrets Manager at start: a
/// secret that is missing or not a `whsec_` value stops it with a message
/// naming the secret, and `WEBHOOK_SECRET` (development) needs no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_secret_comes_from_secrets_manager_or_start_up_stops() {
    use failover_adapters::aws::env::{webhook_secret, AwsSettings};
    use failover_core::webhook::WebhookSecret;
    use failover_core::Policy;

    let env = failover_tests::aws::fresh().await;
    let settings = |id: &str| {
        let vars = [
            ("TABLE_NAME", env.table.clone()),
            ("BODY_BUCKET", env.body_bucket.clone()),
            ("BODY_BUCKET", env.body_bucket.clone()),
            ("QUEUE_URL", env.queue_url.clone()),
            ("BACKEND_URL", "http://127.0.0.1:9/".to_string()),
            ("WEBHOOK_SECRET_ID", id.to_string()),
        ];
        AwsSettings::from_lookup(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("settings")
    };
    let policy = Policy::default();
    let expected = WebhookSecret::parse(failover_tests::spawn::TEST_SECRET).ok();
    let text = |s: Option<WebhookSecret>| s.map(|s| s.to_text());
    let read = webhook_secret(&settings(&env.webhook_secret_id), &policy).await;
    assert_eq!(text(read.expect("read")), text(expected.clone()));

    let missing = webhook_secret(&settings("no-such-secret"), &policy).await;
    assert!(missing.unwrap_err().contains("no-such-secret"));

    let wrong = aws_sdk_secretsmanager::Client::new(&env.sdk)
        .create_secret()
        .name(format!(
            "not-a-webhook-secret-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .secret_string("hunter2")
        .send()
        .await
        .expect("create")
        .arn
        .expect("arn");
    let err = webhook_secret(&settings(&wrong), &policy)
        .await
        .unwrap_err();
    assert!(err.contains(&wrong) && !err.contains("hunter2"), "{err}");

    let local = Policy {
        webhook_secret: expected.clone(),
        ..Policy::default()
    };
    let dev = webhook_secret(&settings("no-such-secret"), &local).await;
    assert_eq!(text(dev.expect("no call")), text(expected));
}
