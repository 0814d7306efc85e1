//! AWS mode end to end: API Gateway events into the api function, SQS
//! events into the worker function, DynamoDB, SNS with a filter policy, the
//! signed webhook, redelivery and poison messages.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use failover_core::ticket::{ErrorKind, Status};
use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::TEST_SECRET;
use serde_json::Value;

use crate::stack::{body, failures, queue_arn, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_backend_answers_through_the_api_function() {
    let s = Stack::start().await;
    s.backend
        .push(Behaviour::status(201, r#"{"payment":"p_1"}"#));
    let resp = s
        .post(&[("x-request-id", "req-7")], r#"{"amount": 1}"#)
        .await;
    assert_eq!(resp["statusCode"], 201, "{resp}");
    assert_eq!(resp["headers"]["x-failover-mode"], "sync");
    assert_eq!(resp["headers"]["x-request-id"], "req-7");
    assert_eq!(body(&resp)["payment"], "p_1");
    let h = s.get("/health", "").await;
    assert_eq!(body(&h)["mode"], "sync");
}

/// Subscribes a fresh queue to the topic, receiving only `succeeded` events.
pub(crate) async fn succeeded_subscriber(s: &Stack) -> String {
    subscriber(s, "succeeded").await
}

/// Subscribes a fresh queue to the topic, receiving only `status` events.
pub(crate) async fn subscriber(s: &Stack, status: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let url = s
        .sqs
        .create_queue()
        .queue_name(format!("{status}-{}", &suffix[..12]))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = queue_arn(&s.sqs, &url).await;
    aws_sdk_sns::Client::new(&s.env.sdk)
        .subscribe()
        .topic_arn(&s.env.topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("FilterPolicy", format!(r#"{{"status": ["{status}"]}}"#))
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    url
}

pub(crate) async fn receive_on(
    s: &Stack,
    url: &str,
    wait: i32,
) -> Vec<aws_sdk_sqs::types::Message> {
    s.sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_fails_over_then_the_worker_completes_and_notifies() {
    let s = Stack::start().await;
    let subscriber = succeeded_subscriber(&s).await;
    s.backend.push(Behaviour::slow(
        200,
        r#"{"late":true}"#,
        Duration::from_secs(5),
    ));
    s.backend
        .set_default(Behaviour::status(200, r#"{"paid":true}"#));
    let resp = s
        .post(
            &[("callback-url", s.hooks.url.as_str())],
            r#"{"amount": 2}"#,
        )
        .await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    assert_eq!(resp["headers"]["x-failover-mode"], "async");
    let accepted = body(&resp);
    assert_eq!(accepted["reason"], "timeout");
    let id = accepted["ticket_id"].as_str().unwrap().to_string();
    assert_eq!(
        resp["headers"]["location"],
        format!("/tickets/{id}").as_str()
    );
    assert_eq!(s.ticket(&id).await.status, Status::Queued);

    let messages = s.receive().await;
    assert_eq!(messages.len(), 1);
    let attribute = messages[0]
        .message_attributes()
        .and_then(|a| a.get("ticket_id"))
        .and_then(|v| v.string_value());
    assert_eq!(
        attribute,
        Some(id.as_str()),
        "ticket id as a message attribute"
    );
    let batch = s.work(&messages).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    let t = s.ticket(&id).await;
    assert_eq!(t.status, Status::Succeeded);
    assert_eq!(t.result.as_ref().unwrap().status_code, 200);

    // The API reads the same ticket from DynamoDB.
    let got = body(&s.get(&format!("/tickets/{id}"), "").await);
    assert_eq!(got["status"], "succeeded");
    assert_eq!(got["result"]["body"]["paid"], true);

    // SNS, through a subscription filtered on status.
    let published = receive_on(&s, &subscriber, 5).await;
    assert_eq!(published.len(), 1);
    let event: Value = serde_json::from_str(published[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "ticket.succeeded");
    assert_eq!(event["data"]["ticket_id"], id.as_str());
    let attrs = published[0].message_attributes().unwrap();
    assert_eq!(attrs["status"].string_value(), Some("succeeded"));
    assert_eq!(attrs["event_type"].string_value(), Some("ticket.succeeded"));

    // The signed webhook.
    let hooks = s.hooks.deliveries();
    assert_eq!(hooks.len(), 1);
    standardwebhooks::Webhook::new(TEST_SECRET)
        .unwrap()
        .verify(hooks[0].body.as_bytes(), &hooks[0].headers)
        .expect("valid signature");

    // A rejected ticket: failed/rejected, and the filter keeps it off the
    // `succeeded` subscription.
    s.backend
        .push(Behaviour::status(422, r#"{"error":"bad card"}"#));
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 3}"#)
        .await;
    let rejected = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let batch = s.work(&s.receive().await).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    let t = s.ticket(&rejected).await;
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.error.unwrap().kind, ErrorKind::Rejected);
    assert!(
        receive_on(&s, &subscriber, 2).await.is_empty(),
        "filtered out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_ticket_is_published_and_never_reaches_the_backend() {
    let s = Stack::start().await;
    let subscriber = subscriber(&s, "failed").await;
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 4}"#)
        .await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let cancelled = s.delete(&format!("/tickets/{id}")).await;
    assert_eq!(cancelled["statusCode"], 202, "{cancelled}");
    assert_eq!(body(&cancelled)["error"]["kind"], "cancelled");
    let again = s.delete(&format!("/tickets/{id}")).await;
    assert_eq!(again["statusCode"], 409, "{again}");
    // The capture's message and the cancel's: both handled, neither calls.
    // One at a time: in one batch, the two would race to notify, and the
    // loser would come back later (safe, but not what is tested here).
    let mut messages = s.receive().await;
    if messages.len() < 2 {
        messages.extend(s.receive().await);
    }
    assert_eq!(messages.len(), 2, "{messages:?}");
    for one in messages.chunks(1) {
        let batch = s.work(one).await;
        assert!(failures(&batch).is_empty(), "{batch}");
    }
    assert!(s.backend.calls().is_empty(), "the backend was called");
    let published = receive_on(&s, &subscriber, 5).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let event: Value = serde_json::from_str(published[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "ticket.failed");
    assert_eq!(event["data"]["error"]["kind"], "cancelled", "{event}");
    let t = s.ticket(&id).await;
    assert_eq!(t.error.map(|e| e.kind), Some(ErrorKind::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_calls_the_backend_once() {
    let s = Stack::start().await;
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 4}"#)
        .await;
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let messages = s.receive().await;
    assert!(failures(&s.work(&messages).await).is_empty());
    // The same record again, as SQS's at-least-once delivery may do.
    assert!(failures(&s.work(&messages).await).is_empty());
    assert_eq!(s.ticket(&id).await.status, Status::Succeeded);
    assert_eq!(s.backend.answered_for(&id), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_reported_and_comes_back_when_due() {
    let s = Stack::start().await;
    s.backend.push(Behaviour::status(503, "{}"));
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 5}"#)
        .await;
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let messages = s.receive().await;
    let batch = s.work(&messages).await;
    assert_eq!(
        failures(&batch),
        vec![messages[0].message_id().unwrap().to_string()]
    );
    let t = s.ticket(&id).await;
    assert_eq!((t.status, t.attempts), (Status::Queued, 1));
    // Its visibility was set to the backoff (0.5-1 s), not the 30 s it was
    // received with: it is back within a few seconds.
    let mut again = Vec::new();
    for _ in 0..5 {
        again = s.receive().await;
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1, "the retry came back");
    assert!(failures(&s.work(&again).await).is_empty());
    let t = s.ticket(&id).await;
    assert_eq!((t.status, t.attempts), (Status::Succeeded, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dead_letter_queue() {
    let s = Stack::start().await;
    s.sqs
        .send_message()
        .queue_url(&s.env.queue_url)
        .message_body("not a ticket")
        .send()
        .await
        .unwrap();
    let batch = s.work(&s.receive().await).await;
    // Moved to the DLQ at once (not left to burn receives), so not a failure.
    assert!(failures(&batch).is_empty(), "{batch}");
    let dead = receive_on(&s, &s.env.dlq_url, 5).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("not a ticket"));
    let depth = s
        .sqs
        .get_queue_attributes()
        .queue_url(&s.env.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = depth.attributes.unwrap();
    assert_eq!(attrs[&QueueAttributeName::ApproximateNumberOfMessages], "0");
    assert_eq!(
        attrs[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible],
        "0"
    );
    assert!(s.backend.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_the_ticket_id_and_metrics_are_emf() {
    let s = Stack::start().await;
    s.backend
        .push(Behaviour::slow(200, "{}", Duration::from_secs(5)));
    let resp = s.post(&[], r#"{"amount": 6}"#).await;
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    assert!(failures(&s.work(&s.receive().await).await).is_empty());

    let emf = |out: &[Value], name: &str| -> Vec<Value> {
        out.iter()
            .filter(|l| l["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == name)
            .cloned()
            .collect()
    };
    let api = s
        .api
        .output_when(|o| !emf(o, "CaptureLatency").is_empty())
        .await;
    let failover = emf(&api, "Failover");
    assert_eq!(failover.len(), 1, "{api:?}");
    assert_eq!(failover[0]["Reason"], "timeout");
    assert_eq!(failover[0]["Service"], "api");
    assert_eq!(
        failover[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "FailoverGateway"
    );
    assert_eq!(emf(&api, "CaptureLatency").len(), 1);
    let accepted: Vec<&Value> = api
        .iter()
        .filter(|l| l["fields"]["message"] == "request accepted for async processing")
        .collect();
    assert_eq!(accepted.len(), 1, "{api:?}");
    assert_eq!(accepted[0]["fields"]["ticket_id"], id.as_str());

    let worker = s
        .worker
        .output_when(|o| !emf(o, "WorkerOutcome").is_empty())
        .await;
    let outcomes = emf(&worker, "WorkerOutcome");
    assert_eq!(outcomes.len(), 1, "{worker:?}");
    assert_eq!(outcomes[0]["Outcome"], "succeeded");
    // Every log line the worker wrote for this ticket carries its id.
    let logs: Vec<&Value> = worker.iter().filter(|l| l.get("level").is_some()).collect();
    assert!(!logs.is_empty());
    for line in logs {
        assert_eq!(line["span"]["ticket_id"], id.as_str(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_sweeper_re_enqueues_a_lost_ticket() {
    let s = Stack::start().await;
    let sweeper = s.sweeper().await;
    let orphan = s.lost_ticket().await;
    let out = sweeper
        .invoke(failover_tests::events::scheduled(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out["reenqueued"], 1, "{out}");
    let messages = s.receive().await;
    assert_eq!(messages.len(), 1);
    assert!(failures(&s.work(&messages).await).is_empty());
    assert_eq!(s.ticket(&orphan).await.status, Status::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_per_authenticated_caller() {
    let s = Stack::start().await;
    let as_caller = |sub: &str| {
        let mut event = failover_tests::events::http_api(
            "POST",
            "/requests",
            "",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "order-1"),
            ],
            Some(r#"{"amount": 9}"#),
        );
        event["requestContext"]["authorizer"] = serde_json::json!({
            "jwt": {"claims": {"iss": "https://issuer.example", "sub": sub}, "scopes": null}
        });
        event
    };
    let post = |event| async { s.api.invoke(event, Duration::from_secs(10)).await.unwrap() };
    let alice = post(as_caller("alice")).await;
    assert_eq!(alice["statusCode"], 200, "{alice}");
    // Alice's retry replays her answer...
    let again = post(as_caller("alice")).await;
    assert_eq!(again["headers"]["idempotent-replayed"], "true", "{again}");
    // ...but Bob's request with the same key is his own, never her answer.
    let bob = post(as_caller("bob")).await;
    assert_eq!(bob["statusCode"], 200, "{bob}");
    assert!(bob["headers"].get("idempotent-replayed").is_none(), "{bob}");
    assert_eq!(s.backend.calls().len(), 2, "one call per caller");
}

/// The bytes of a Lambda proxy answer's body.
fn raw_body(resp: &Value) -> Vec<u8> {
    use base64::Engine as _;
    let text = resp["body"].as_str().unwrap_or_default();
    match resp["isBase64Encoded"].as_bool() {
        Some(true) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64 body"),
        _ => text.as_bytes().to_vec(),
    }
}

/// Sizes one table item cannot hold: a 200 KiB request of quotes (twice
/// that once escaped) and a 300 KiB answer that is not UTF-8. The request
/// is accepted, run once with exactly its bytes, and `/result` returns the
/// answer byte for byte; so does an idempotent replay of a sync answer.
/// The items keep pointers to the bucket (the claim check), not the bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_accepted_processed_once_and_returned_verbatim() {
    use failover_adapters::aws::INLINE_MAX;
    let s = Stack::start().await;
    let request = format!(r#"{{"note":"{}"}}"#, r#"\""#.repeat(100 * 1024));
    assert!(request.len() > 200 * 1024);
    let answer: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8 | 0x80).collect();
    assert!(std::str::from_utf8(&answer).is_err());
    let octets = "application/octet-stream";
    s.backend
        .set_default(Behaviour::bytes(200, &answer, octets, Duration::ZERO));

    let resp = s.post(&[("prefer", "respond-async")], &request).await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let messages = s.receive().await;
    assert!(failures(&s.work(&messages).await).is_empty());
    // A redelivery changes nothing.
    assert!(failures(&s.work(&messages).await).is_empty());
    assert_eq!(s.ticket(&id).await.status, Status::Succeeded);
    assert_eq!(s.backend.answered_for(&id), 1, "processed once");
    let call = s
        .backend
        .calls()
        .into_iter()
        .find(|c| c.idempotency_key.as_deref() == Some(&id));
    assert!(
        call.is_some_and(|c| c.body == request),
        "the request's exact bytes"
    );
    let result = s.get(&format!("/tickets/{id}/result"), "").await;
    assert_eq!(result["statusCode"], 200);
    assert_eq!(result["headers"]["content-type"], octets);
    assert!(raw_body(&result) == answer, "the answer's exact bytes");

    // The item points at the bucket instead of holding the bodies.
    let item = aws_sdk_dynamodb::Client::new(&s.env.sdk)
        .get_item()
        .table_name(&s.env.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{id}")),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    for part in ["b_req", "b_res"] {
        let pointer = item[part].as_s().expect("a pointer, not the bytes");
        assert!(pointer.contains("PayloadS3Pointer"), "{pointer}");
    }
    let size: usize = item
        .iter()
        .map(|(k, v)| {
            k.len() + v.as_s().map_or(0, String::len) + v.as_b().map_or(0, |b| b.as_ref().len())
        })
        .sum();
    assert!(size < 3 * INLINE_MAX, "{size} bytes in the item");

    // The sync path, with an Idempotency-Key: the replay is the same bytes.
    let key = [("idempotency-key", "large-1")];
    let first = s.post(&key, &request).await;
    assert_eq!(first["statusCode"], 200, "{first}");
    assert!(raw_body(&first) == answer);
    let replay = s.post(&key, &request).await;
    assert_eq!(replay["statusCode"], 200);
    assert!(raw_body(&replay) == answer, "the replay's exact bytes");
    let sync_calls = s
        .backend
        .calls()
        .iter()
        .filter(|c| c.body == request)
        .count();
    assert_eq!(
        sync_calls, 2,
        "one async and one sync call, no replayed call"
    );
}
