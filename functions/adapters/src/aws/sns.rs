//! Terminal events to an SNS topic, with the `event_type` and `status`
//! message attributes that subscription filter policies match on.
//!
//! With a notice, the message is per protocol (`MessageStructure: json`):
//! `email` and `sms` subscribers get its texts (and email its subject),
//! every other protocol (`sqs`, `lambda`, `https`, ...) the JSON event as
//! `default`, unchanged.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use failover_core::notice::Notice;
use failover_core::ports::{EventPublisher, NotifyError, TopicEvent};

#[derive(Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| NotifyError(e.to_string()))
}

/// The message of `MessageStructure: json`: a text per protocol, the event
/// for every protocol not named (`default`).
fn per_protocol(event: &str, n: &Notice) -> String {
    serde_json::json!({ "default": event, "email": n.email, "sms": n.sms }).to_string()
}

#[async_trait]
impl EventPublisher for SnsPublisher {
    async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError> {
        let mut publish = self.client.publish().topic_arn(&self.topic_arn);
        publish = match &event.notice {
            None => publish.message(&event.body),
            Some(n) => publish
                .message(per_protocol(&event.body, n))
                .message_structure("json")
                .subject(&n.subject),
        };
        publish = publish
            .message_attributes("event_type", attribute(&event.event_type)?)
            .message_attributes("status", attribute(&event.status)?);
        if let Some(tp) = &event.traceparent {
            // Subscribers continue the trace from it (not a filter key).
            publish = publish.message_attributes("traceparent", attribute(tp)?);
        }
        publish
            .send()
            .await
            .map(|_| ())
            .map_err(|e| NotifyError(aws_sdk_sns::error::DisplayErrorContext(&e).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_gets_its_text_and_the_rest_the_event() {
        let event = r#"{"type":"ticket.failed","data":{"body":"a \"quoted\" line"}}"#;
        let n = Notice {
            subject: "Request x failed".into(),
            email: "Your request x was declined.\n".into(),
            sms: "Request failed (rejected): /tickets/x".into(),
        };
        let m: serde_json::Value = serde_json::from_str(&per_protocol(event, &n)).unwrap();
        let keys: Vec<_> = m.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["default", "email", "sms"]);
        // SNS takes only strings: the event goes as the exact text it was.
        assert_eq!(m["default"].as_str(), Some(event));
        assert_eq!(m["email"].as_str(), Some(n.email.as_str()));
        assert_eq!(m["sms"].as_str(), Some(n.sms.as_str()));
    }
}
