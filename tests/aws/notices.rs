//! Completion notices through SNS on the emulator: an SMS subscriber
//! (filtered to failures, as an on-call phone would be) gets the one-line
//! notice, with no body in it, while a queue subscribed with raw delivery
//! still gets the JSON event it always had.

use serde_json::Value;

use failover_tests::mock_backend::Behaviour;

use crate::e2e::{receive_on, subscriber};
use crate::stack::{body, failures, Stack};

/// What LocalStack's SNS sent to `phone` (its `/_aws/sns/sms-messages`).
async fn texts_to(phone: &str) -> Vec<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the emulator");
    let url = format!(
        "{endpoint}/_aws/sns/sms-messages?phoneNumber={}",
        phone.replace('+', "%2B")
    );
    let got: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    got["sms_messages"][phone]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_subscriber_gets_the_notice_and_a_queue_the_unchanged_event() {
    let base = "https://api.example.com";
    let s = Stack::start_with(&[], &[("PUBLIC_BASE_URL", base.to_string())]).await;
    let phone = format!("+1555{:07}", uuid::Uuid::new_v4().as_u128() % 10_000_000);
    aws_sdk_sns::Client::new(&s.env.sdk)
        .subscribe()
        .topic_arn(&s.env.topic_arn)
        .protocol("sms")
        .endpoint(&phone)
        .attributes("FilterPolicy", r#"{"status": ["failed"]}"#)
        .send()
        .await
        .unwrap();
    let queue = subscriber(&s, "failed").await;

    // Declined: failed/rejected, with a card number in the request and the
    // backend's answer.
    s.backend.push(Behaviour::status(
        422,
        r#"{"error":"card 4111111111111111 declined"}"#,
    ));
    let resp = s
        .post(
            &[("prefer", "respond-async")],
            r#"{"card": "4111111111111111"}"#,
        )
        .await;
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    let batch = s.work(&s.receive().await).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    // And one that succeeds: not a failure, so not texted.
    let ok = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 1}"#)
        .await;
    assert_eq!(ok["statusCode"], 202);
    let batch = s.work(&s.receive().await).await;
    assert!(failures(&batch).is_empty(), "{batch}");

    let texts = texts_to(&phone).await;
    assert_eq!(texts.len(), 1, "{texts:#?}");
    // The emulator's record JSON-encodes the text of a per-protocol
    // message (`_format_messages` in its SNS provider); SNS sends it as is.
    assert_eq!(texts[0]["MessageStructure"], "json");
    let recorded = texts[0]["Message"].as_str().unwrap();
    let sms: String = serde_json::from_str(recorded).unwrap();
    assert_eq!(
        sms,
        format!("Request failed (rejected): {base}/tickets/{id}")
    );
    assert_eq!(texts[0]["Subject"], format!("Request {id} failed").as_str());
    assert!(sms.len() <= failover_core::notice::SMS_MAX_BYTES);

    let published = receive_on(&s, &queue, 5).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let event: Value = serde_json::from_str(published[0].body().unwrap()).unwrap();
    assert_eq!(event["type"], "ticket.failed", "{event}");
    assert_eq!(event["data"]["ticket_id"], id.as_str());
    assert!(
        event.get("sms").is_none() && event.get("default").is_none(),
        "{event}"
    );
    let attrs = published[0].message_attributes().unwrap();
    assert_eq!(attrs["status"].string_value(), Some("failed"));
}
