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
use failover_core::lane::Lane;
use failover_core::message::QueueMessage;
use failover_core::ports::{Delivery, Priority, Queue, QueueError, QueueStats};

/// One lane's queue and its dead-letter queue.
#[derive(Clone)]
pub(super) struct LaneQueue {
    pub(super) url: String,
    pub(super) dlq_url: Option<String>,
}

/// The lanes' queues, `critical` first; lanes without a queue of their own
/// share `normal`'s.
#[derive(Clone)]
pub struct SqsQueue {
    pub(super) client: Client,
    lanes: [LaneQueue; 3],
}

/// A delivery's priority from its message attributes (`lane`, `since_ms`),
/// as sent; a message from before lanes is `normal`, waiting since it was
/// sent (`SentTimestamp`).
pub fn priority_of(lane: Option<&str>, since_ms: Option<&str>, sent_ms: Option<&str>) -> Priority {
    let since = since_ms.or(sent_ms).and_then(|v| v.parse().ok());
    Priority {
        lane: lane.and_then(|l| Lane::parse(l).ok()).unwrap_or_default(),
        since_ms: since.unwrap_or(0),
    }
}

fn ceil_secs(d: Duration) -> i32 {
    d.as_millis().div_ceil(1000).min(i32::MAX as u128) as i32
}

pub(super) fn unavailable<E, R>(e: SdkError<E, R>) -> QueueError
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
    /// Every lane on one queue (until [`SqsQueue::with_lane`]).
    pub fn new(client: Client, url: impl Into<String>, dlq_url: Option<String>) -> Self {
        let normal = LaneQueue {
            url: url.into(),
            dlq_url,
        };
        Self {
            client,
            lanes: [normal.clone(), normal.clone(), normal],
        }
    }

    /// Gives `lane` a queue of its own.
    pub fn with_lane(
        mut self,
        lane: Lane,
        url: impl Into<String>,
        dlq_url: Option<String>,
    ) -> Self {
        self.lanes[lane.rank() as usize] = LaneQueue {
            url: url.into(),
            dlq_url,
        };
        self
    }

    pub(super) fn queue(&self, lane: Lane) -> &LaneQueue {
        &self.lanes[lane.rank() as usize]
    }

    /// The lanes whose queue is their own (or `normal`, which owns the
    /// shared one), highest first.
    pub(super) fn owners(&self) -> impl Iterator<Item = Lane> + '_ {
        let normal = &self.queue(Lane::Normal).url;
        Lane::ALL
            .into_iter()
            .filter(move |l| *l == Lane::Normal || self.queue(*l).url != *normal)
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

pub(super) fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(
        &self,
        body: &str,
        priority: Priority,
        delay: Duration,
    ) -> Result<String, QueueError> {
        let since = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(priority.since_ms.to_string())
            .build()
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue(priority.lane).url)
            .message_body(body)
            .delay_seconds(ceil_secs(delay).min(900))
            .message_attributes("lane", string_attribute(priority.lane.as_str())?)
            .message_attributes("since_ms", since);
        // The ticket id as an attribute too, so that an operator looking at
        // the queue or the DLQ (console, CLI) sees it without parsing bodies.
        if let Ok(msg) = QueueMessage::parse(body) {
            send =
                send.message_attributes("ticket_id", string_attribute(&msg.ticket_id.to_string())?);
        }
        let out = send.send().await.map_err(unavailable)?;
        Ok(out.message_id.unwrap_or_default())
    }

    /// From each lane's queue in turn, highest first; only the last one
    /// asked waits (long polling) when the others had nothing.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let owners: Vec<Lane> = self.owners().collect();
        let mut out = Vec::new();
        for (i, lane) in owners.iter().enumerate() {
            let left = max.clamp(1, 10) - out.len();
            let last = i + 1 == owners.len();
            let wait = if last && out.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            out.extend(self.receive_from(*lane, left, visibility, wait).await?);
            if out.len() >= max.clamp(1, 10) {
                break;
            }
        }
        Ok(out)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue(delivery.priority.lane).url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(receipt_error)
    }

    async fn defer(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue(delivery.priority.lane).url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(ceil_secs(delay).min(43_200))
            .send()
            .await
            .map(|_| ())
            .map_err(receipt_error)
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let Some(dlq) = &self.queue(delivery.priority.lane).dlq_url else {
            return Err(QueueError::Unavailable(
                "no dead-letter queue configured".into(),
            ));
        };
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(&delivery.body)
            .message_attributes("reason", string_attribute(reason)?)
            .message_attributes("lane", string_attribute(delivery.priority.lane.as_str())?)
            .send()
            .await
            .map_err(unavailable)?;
        self.ack(delivery).await
    }

    /// Per lane queue; SQS tells no message's age (only CloudWatch does).
    async fn stats(&self) -> Result<QueueStats, QueueError> {
        use QueueAttributeName as A;
        let mut stats = QueueStats::of(std::iter::empty(), 0, 0);
        for lane in self.owners() {
            let q = self.queue(lane);
            let l = &mut stats.lanes[lane.rank() as usize];
            l.visible = self
                .count(&q.url, &[A::ApproximateNumberOfMessages])
                .await?;
            let hidden = [
                A::ApproximateNumberOfMessagesNotVisible,
                A::ApproximateNumberOfMessagesDelayed,
            ];
            l.in_flight = self.count(&q.url, &hidden).await?;
            if let Some(dlq) = &q.dlq_url {
                let all = [
                    A::ApproximateNumberOfMessages,
                    A::ApproximateNumberOfMessagesNotVisible,
                ];
                stats.dead_letters += self.count(dlq, &all).await?;
            }
        }
        stats.visible = stats.lanes.iter().map(|l| l.visible).sum();
        stats.in_flight = stats.lanes.iter().map(|l| l.in_flight).sum();
        Ok(stats)
    }
}

impl SqsQueue {
    async fn receive_from(
        &self,
        lane: Lane,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue(lane).url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(ceil_secs(visibility).min(43_200))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let system = |name: MessageSystemAttributeName| {
                    m.attributes.as_ref().and_then(|a| a.get(&name)).cloned()
                };
                let custom = |name: &str| {
                    m.message_attributes
                        .as_ref()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value.clone())
                };
                let receive_count = system(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let priority = priority_of(
                    custom("lane").as_deref(),
                    custom("since_ms").as_deref(),
                    system(MessageSystemAttributeName::SentTimestamp).as_deref(),
                );
                Delivery {
                    message_id: m.message_id.clone().unwrap_or_default(),
                    receipt: m.receipt_handle.clone().unwrap_or_default(),
                    body: m.body.clone().unwrap_or_default(),
                    receive_count,
                    priority,
                }
            })
            .collect())
    }
}
