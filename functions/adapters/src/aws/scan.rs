//! Every ticket in the table, page by page, for the operator's tool.
//!
//! A `Scan` reads the whole table (tickets, idempotency records, the
//! breaker's items) and keeps the tickets: an operator lists rarely, and
//! an index for it would cost every write on the hot path. Each call reads
//! at most [`PAGE_ITEMS`] items; the cursor is the last key read, so a
//! listing of a large table goes on where the last page stopped.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use failover_core::operator::ports::{TicketPage, TicketScan};
use failover_core::ports::StoreError;
use failover_core::ticket::Ticket;

use super::dynamodb::{doc_of, purge_ms, s, DynamoStore};
use super::env::TABLE_KEY;
use super::parts::{self, TICKET_PARTS};
use super::unavailable;

/// Items read per `Scan` call (DynamoDB stops earlier at 1 MB).
const PAGE_ITEMS: i32 = 200;

#[async_trait]
impl TicketScan for DynamoStore {
    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<TicketPage, StoreError> {
        let now = self.clock.now_ms();
        let mut start = cursor;
        let mut tickets = Vec::new();
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#k, :t)")
                .expression_attribute_names("#k", TABLE_KEY)
                .expression_attribute_values(":t", s("T#"))
                .limit(PAGE_ITEMS)
                .set_exclusive_start_key(
                    start
                        .take()
                        .map(|k| [(TABLE_KEY.to_string(), AttributeValue::S(k))].into()),
                )
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                if purge_ms(&item) <= now {
                    continue;
                }
                let mut ticket: Ticket = doc_of(&item)?;
                let bodies = parts::load(&item, TICKET_PARTS, self.blobs.as_deref()).await?;
                parts::join_ticket(&mut ticket, bodies)?;
                tickets.push(ticket);
            }
            let next = out
                .last_evaluated_key
                .and_then(|k| k.get(TABLE_KEY)?.as_s().ok().cloned());
            match next {
                Some(key) if tickets.len() < limit => start = Some(key),
                next => return Ok(TicketPage { tickets, next }),
            }
        }
    }
}
