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
