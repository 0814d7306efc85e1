//! Completion notifications: the signed webhook (checked with the
//! independent `standardwebhooks` crate) and the topic publication.

use failover_tests::mock_backend::Behaviour;
use failover_tests::receiver::Receiver;
use failover_tests::spawn::{spawn_app_with, test_policy, TEST_SECRET};
use serde_json::Value;
use standardwebhooks::Webhook;

async fn accepted_with_callback(app: &failover_tests::spawn::TestApp, url: &str) -> String {
    let resp = app
        .post_async(r#"{"amount": 11}"#)
        .header("callback-url", url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["ticket_id"].as_str().unwrap().to_string()
}

/// Whether a ticket lists a delivered webhook.
fn webhook_delivered(t: &Value) -> bool {
    t["notifications"].as_array().is_some_and(|n| {
        n.iter()
            .any(|a| a["channel"] == "webhook" && a["delivered"] == true)
    })
}

#[tokio::test]
async fn the_webhook_is_signed_per_standard_webhooks() {
    let app = spawn_app_with(test_policy(), Behaviour::ok(r#"{"paid":true}"#)).await;
    let hook = Receiver::start().await;
    let id = accepted_with_callback(&app, &hook.url).await;
    let t = app.wait_for(&id, webhook_delivered).await;
    assert_eq!(t["status"], "succeeded");

    let got = hook.deliveries();
    assert_eq!(got.len(), 1);
    let d = &got[0];
    let verifier = Webhook::new(TEST_SECRET).unwrap();
    verifier
        .verify(d.body.as_bytes(), &d.headers)
        .expect("a valid Standard Webhooks signature");
    // A tampered body fails verification.
    let tampered = d.body.replace("succeeded", "failed");
    assert!(verifier.verify(tampered.as_bytes(), &d.headers).is_err());
    // So does another secret.
    let other = Webhook::new("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0").unwrap();
    assert!(other.verify(d.body.as_bytes(), &d.headers).is_err());

    let event: Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(event["type"], "ticket.succeeded");
    assert!(event["timestamp"].is_string());
    assert_eq!(event["data"]["ticket_id"], id.as_str());
    assert_eq!(event["data"]["status"], "succeeded");
    assert_eq!(event["data"]["result"]["body"]["paid"], true);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_a_stable_id_and_recorded() {
    let app = spawn_app_with(test_policy(), Behaviour::ok("{}")).await;
    let hook = Receiver::start().await;
    hook.fail_with(&[500, 503]);
    let id = accepted_with_callback(&app, &hook.url).await;
    let t = app.wait_for(&id, webhook_delivered).await;
    let webhook: Vec<&Value> = t["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["channel"] == "webhook")
        .collect();
    assert_eq!(webhook.len(), 3, "{t}");
    assert_eq!(webhook[0]["status_code"], 500);
    assert_eq!(webhook[0]["delivered"], false);
    assert_eq!(webhook[2]["delivered"], true);
    let got = hook.deliveries();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got
        .iter()
        .map(|d| d.headers["webhook-id"].clone())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert!(
        got.windows(2).all(|w| w[0].body == w[1].body),
        "same bytes every time"
    );
    // The backend was called once: notification retries never re-run it.
    assert_eq!(app.backend.answered_for(&id), 1);
}

#[tokio::test]
async fn a_receiver_that_never_accepts_is_given_up_on() {
    let mut policy = test_policy();
    policy.webhook_max_attempts = 2;
    let app = spawn_app_with(policy, Behaviour::ok("{}")).await;
    let hook = Receiver::start().await;
    hook.fail_with(&[500; 10]);
    let id = accepted_with_callback(&app, &hook.url).await;
    let t = app
        .wait_for(&id, |t| {
            t["notifications"]
                .as_array()
                .is_some_and(|n| n.iter().filter(|a| a["channel"] == "webhook").count() == 2)
        })
        .await;
    // Visibly so: the ticket says the receiver never heard of it.
    assert_eq!(t["delivery"]["webhook"], "exhausted", "{t}");
    assert_eq!(t["delivery"]["sns"], "delivered", "{t}");
    // The message is settled: the queue drains.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = failover_core::ports::Queue::stats(&app.store)
            .await
            .unwrap();
        if s.visible + s.in_flight == 0 {
            break;
        }
        assert!(std::time::Instant::now() < until, "{s:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(hook.deliveries().len(), 2);
}

#[tokio::test]
async fn terminal_events_are_published_to_the_topic() {
    let app = spawn_app_with(
        test_policy(),
        Behaviour::status(402, r#"{"error":"declined"}"#),
    )
    .await;
    let resp = app.post_async("{}").send().await.unwrap();
    let id = resp.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "failed");
    let t = app
        .wait_for(&id, |t| {
            t["notifications"].as_array().is_some_and(|n| !n.is_empty())
        })
        .await;
    assert_eq!(t["notifications"][0]["channel"], "sns");
    let published = app.store.publications().await.unwrap();
    assert_eq!(published.len(), 1);
    let p = &published[0];
    assert_eq!(p.event_type, "ticket.failed");
    assert_eq!(p.status, "failed");
    let body: Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(body["data"]["ticket_id"], id.as_str());
    assert_eq!(body["data"]["error"]["kind"], "rejected");
}

#[tokio::test]
async fn callbacks_need_a_configured_secret() {
    let mut policy = test_policy();
    policy.webhook_secret = None;
    let app = spawn_app_with(policy, Behaviour::ok("{}")).await;
    let resp = app
        .post("{}")
        .header("callback-url", "https://hooks.example.com/x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_token_in_the_callback_url_never_reaches_the_ticket() {
    let app = spawn_app_with(test_policy(), Behaviour::ok("{}")).await;
    // Nothing listens on port 9: the delivery fails with a network error.
    let id = accepted_with_callback(&app, "http://127.0.0.1:9/hook?token=s3cr3t").await;
    let t = app
        .wait_for(&id, |t| {
            t["notifications"]
                .as_array()
                .is_some_and(|n| n.iter().any(|a| a["channel"] == "webhook"))
        })
        .await;
    let text = t.to_string();
    assert!(text.contains("error"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[tokio::test]
async fn a_large_answer_is_referred_to_by_the_notification_not_carried() {
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(100 * 1024));
    let app = spawn_app_with(test_policy(), Behaviour::ok(&big)).await;
    let r = app.post_async(r#"{"amount": 12}"#).send().await.unwrap();
    let id = r.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = app.wait_terminal(&id).await;
    assert_eq!(
        t["result"]["body"]["blob"].as_str().map(str::len),
        Some(100 * 1024)
    );
    // The topic event (SNS takes 256 KB at most) points at the answer.
    let published = loop {
        let p = app.store.publications().await.unwrap();
        if !p.is_empty() {
            break p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        published[0].body.len() < 16 * 1024,
        "{}",
        published[0].body.len()
    );
    let event: Value = serde_json::from_str(&published[0].body).unwrap();
    let result = &event["data"]["result"];
    assert_eq!(result["body"], Value::Null);
    assert_eq!(result["body_url"], format!("/tickets/{id}/result"));
    let answer = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(answer.bytes().await.unwrap().len(), big.len());
}

/// Local mode's topic log keeps what an email and an SMS subscriber would
/// get: readable texts with the ticket's outcome, and no body.
#[tokio::test]
async fn the_topic_log_shows_the_email_and_sms_notices() {
    let app = spawn_app_with(
        test_policy(),
        Behaviour::status(422, r#"{"error":"card 4111111111111111 declined"}"#),
    )
    .await;
    let r = app
        .post_async(r#"{"card": "4111111111111111"}"#)
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_terminal(&id).await;
    let published = app.store.publications().await.unwrap();
    let notice = published[0].notice.clone().expect("a notice");
    assert_eq!(notice.subject, format!("Request {id} failed"));
    assert_eq!(
        notice.sms,
        format!("Request failed (rejected): /tickets/{id}")
    );
    assert!(
        notice
            .email
            .starts_with(&format!("Your request {id} was declined by the service.")),
        "{}",
        notice.email
    );
    assert!(notice.email.contains("\nOutcome: failed (rejected)\n"));
    assert!(notice
        .email
        .contains("queued because it was sent to be processed in the background"));
    for text in [&notice.subject, &notice.email, &notice.sms] {
        assert!(!text.contains("4111"), "{text}");
    }
    // The event itself is unchanged: the JSON subscribers read.
    let event: Value = serde_json::from_str(&published[0].body).unwrap();
    assert_eq!(event["type"], "ticket.failed");
}
