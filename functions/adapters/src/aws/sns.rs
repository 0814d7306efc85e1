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

#[async_trait]
impl EventPublisher for SnsPublisher {
    async fn publish(&self, event: &TopicEvent) -> Result<(), NotifyError> {
        let mut publish = self.client.publish().topic_arn(&self.topic_arn);
        publish = match &event.notice {
            None => publish.message(&event.body),
            Some(n) => {
                let per_protocol = serde_json::json!({
                    "default": event.body,
                    "email": n.email,
                    "sms": n.sms,
                });
                publish
                    .message(per_protocol.to_string())
                    .message_structure("json")
                    .subject(&n.subject)
            }
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
