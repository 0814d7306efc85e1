//! The lanes' dead-letter queues, for the operator's tool.
//!
//! SQS cannot peek: listing receives each dead letter (hidden for
//! [`LOOK`], so that one listing pages through the queue) and then makes
//! it visible again. A redrive moves messages one by one: a fresh message
//! in the lane's queue (waiting from now), then the dead one deleted. A
//! crash in between leaves both, and the duplicate is harmless: the ticket
//! decides, and a message is only a pointer to it. SQS's own message-move
//! task cannot be bounded to `--max` messages, so it is not used.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use failover_core::lane::Lane;
use failover_core::operator::ports::{DeadLetter, DeadLetters};
use failover_core::ports::{Clock, Priority, Queue, QueueError, SystemClock};

use super::sqs::{unavailable, SqsQueue};

/// How long a listed dead letter stays hidden while the listing pages on.
const LOOK: i32 = 5;
/// How long a dead letter being moved stays hidden.
const MOVING: i32 = 30;

fn attribute(m: &Message, name: &str) -> Option<String> {
    m.message_attributes
        .as_ref()?
        .get(name)?
        .string_value
        .clone()
}

fn system(m: &Message, name: MessageSystemAttributeName) -> Option<String> {
    m.attributes.as_ref()?.get(&name).cloned()
}

fn dead_letter(m: &Message, lane: Lane) -> DeadLetter {
    DeadLetter {
        message_id: m.message_id.clone().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        // Sent there by the worker with its reason; moved there by the
        // queue's redrive policy without one.
        reason: attribute(m, "reason"),
        receive_count: system(m, MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        lane,
        sent_at: system(m, MessageSystemAttributeName::SentTimestamp).and_then(|t| t.parse().ok()),
    }
}

impl SqsQueue {
    /// The lanes that have a dead-letter queue, each with its URL.
    fn dead_queues(&self) -> Vec<(Lane, String)> {
        self.owners()
            .filter_map(|l| Some((l, self.queue(l).dlq_url.clone()?)))
            .collect()
    }

    async fn receive_dead(
        &self,
        url: &str,
        max: usize,
        hide_s: i32,
    ) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(hide_s)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.messages.unwrap_or_default())
    }
}

#[async_trait]
impl DeadLetters for SqsQueue {
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let mut out: Vec<DeadLetter> = Vec::new();
        for (lane, url) in self.dead_queues() {
            let mut seen = HashSet::new();
            let mut handles = Vec::new();
            while out.len() < max {
                let batch = self.receive_dead(&url, max - out.len(), LOOK).await?;
                let fresh: Vec<_> = batch
                    .iter()
                    .filter(|m| seen.insert(m.message_id.clone()))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                for m in fresh {
                    out.push(dead_letter(m, lane));
                    handles.extend(m.receipt_handle.clone());
                }
            }
            // Visible again at once: listing leaves the queue as it was.
            for handle in handles {
                let shown = self
                    .client
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await;
                if let Err(e) = shown {
                    tracing::debug!(error = %unavailable(e), "a listed dead letter stays hidden for {LOOK} s");
                }
            }
        }
        out.sort_by_key(|d| d.sent_at);
        Ok(out)
    }

    async fn redrive(&self, max: usize) -> Result<u64, QueueError> {
        let mut moved = 0u64;
        let now = SystemClock.now_ms();
        for (lane, url) in self.dead_queues() {
            while (moved as usize) < max {
                let batch = self
                    .receive_dead(&url, max - moved as usize, MOVING)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    let body = m.body.clone().unwrap_or_default();
                    let priority = Priority {
                        lane,
                        since_ms: now,
                    };
                    self.send(&body, priority, Duration::ZERO).await?;
                    self.client
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .send()
                        .await
                        .map_err(unavailable)?;
                    moved += 1;
                }
            }
        }
        Ok(moved)
    }
}
