//! The queue on SQS.
//!
//! SQS counts in whole seconds: delays and visibility timeouts are rounded
//! up, long polls down (at most 20 s), delays capped at 900 s (the queue's
//! limit; the message comes back early and the worker defers it again).
//! Poison messages are sent to the dead-letter queue explicitly and then
//! deleted; messages that crash every worker reach it through the queue's
//! redrive policy instead.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use failover_core::message::QueueMessage;
use failover_core::ports::{Delivery, Queue, QueueError, QueueStats};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dlq_url: Option<String>,
}

fn ceil_secs(d: Duration) -> i32 {
    d.as_millis().div_ceil(1000).min(i32::MAX as u128) as i32
}

fn unavailable<E, R>(e: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Unavailable(DisplayErrorContext(&e).to_string())
}

/// A receipt SQS no longer accepts is a stale receipt, not an outage.
fn receipt_error<E, R>(e: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = e
        .as_service_error()
        .map(|se| (se.code().unwrap_or(""), se.message().unwrap_or("")))
        .unwrap_or(("", ""));
    let stale = code.contains("ReceiptHandleIsInvalid")
        || code.contains("MessageNotInflight")
        || (code.contains("InvalidParameterValue") && message.contains("ReceiptHandle"));
    if stale {
        QueueError::StaleReceipt
    } else {
        unavailable(e)
    }
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>, dlq_url: Option<String>) -> Self {
        Self {
            client,
            url: url.into(),
            dlq_url,
        }
    }

    async fn count(&self, url: &str, names: &[QueueAttributeName]) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(unavailable)?;
        let attrs = out.attributes.unwrap_or_default();
        Ok(names
            .iter()
            .filter_map(|n| attrs.get(n)?.parse::<u64>().ok())
            .sum())
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, body: &str, delay: Duration) -> Result<String, QueueError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(ceil_secs(delay).min(900));
        // The ticket id as an attribute too, so that an operator looking at
        // the queue or the DLQ (console, CLI) sees it without parsing bodies.
        if let Ok(msg) = QueueMessage::parse(body) {
            send =
                send.message_attributes("ticket_id", string_attribute(&msg.ticket_id.to_string())?);
        }
        let out = send.send().await.map_err(unavailable)?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(ceil_secs(visibility).min(43_200))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Delivery {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count,
                }
            })
            .collect())
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(receipt_error)
    }

    async fn defer(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(ceil_secs(delay).min(43_200))
            .send()
            .await
            .map(|_| ())
            .map_err(receipt_error)
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let Some(dlq) = &self.dlq_url else {
            return Err(QueueError::Unavailable("no DLQ_URL configured".into()));
        };
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(&delivery.body)
            .message_attributes("reason", string_attribute(reason)?)
            .send()
            .await
            .map_err(unavailable)?;
        self.ack(&delivery.receipt).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        use QueueAttributeName as A;
        let visible = self
            .count(&self.url, &[A::ApproximateNumberOfMessages])
            .await?;
        let in_flight = self
            .count(
                &self.url,
                &[
                    A::ApproximateNumberOfMessagesNotVisible,
                    A::ApproximateNumberOfMessagesDelayed,
                ],
            )
            .await?;
        let dead_letters = match &self.dlq_url {
            Some(dlq) => {
                self.count(
                    dlq,
                    &[
                        A::ApproximateNumberOfMessages,
                        A::ApproximateNumberOfMessagesNotVisible,
                    ],
                )
                .await?
            }
            None => 0,
        };
        Ok(QueueStats {
            visible,
            in_flight,
            dead_letters,
            // SQS only reports this as a CloudWatch metric.
            oldest_age_ms: None,
        })
    }
}
