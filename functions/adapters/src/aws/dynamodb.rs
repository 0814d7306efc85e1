//! Tickets and idempotency records in one DynamoDB table.
//!
//! Item layout (partition key `pk`, no sort key):
//!
//! | pk | attributes |
//! |---|---|
//! | `T#<ticket id>` | `status`, `version`, `doc` (the ticket as JSON, without bodies), `b_req`, `b_res`, `b_evt` (its bodies), `purge_ms`, `ttl` |
//! | `I#<idempotency key>` | `version`, `doc`, `b_sync` (a sync answer), `purge_ms`, `ttl` |
//! | `H#breaker` | the fleet's circuit breaker (see `health.rs`) |
//!
//! Every write is conditional (`attribute_not_exists`, or `status`/`version`
//! equal to what the caller read), so DynamoDB arbitrates races between
//! Lambda instances exactly as SQLite does locally. `ttl` (epoch seconds) is
//! the table's TTL attribute; TTL deletion is lazy, so reads also check
//! `purge_ms` and treat an expired item as absent. Bodies are binary
//! attributes of their own, or in S3 when large (see `parts.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use failover_core::ports::{Clock, IdemRecord, IdempotencyStore, StoreError, TicketStore};
use failover_core::ticket::{Status, Ticket, TicketId};

use super::blobs::S3Blobs;
use super::env::{
    OVERDUE_DUE, OVERDUE_INDEX, OVERDUE_SHARD, OVERDUE_SHARDS, TABLE_KEY, TABLE_TTL_ATTRIBUTE,
};
use super::parts::{self, RECORD_PARTS, TICKET_PARTS};
use super::unavailable;

pub(super) type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) blobs: Option<Arc<S3Blobs>>,
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ticket_key(id: &TicketId) -> String {
    format!("T#{id}")
}

fn idem_key(key: &str) -> String {
    format!("I#{key}")
}

/// Maps a conditional-check failure to `Conflict`, anything else to
/// `Unavailable`.
pub(super) fn conditional<E, R>(e: SdkError<E, R>, is_condition: impl Fn(&E) -> bool) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) if is_condition(se) => StoreError::Conflict,
        _ => unavailable(e),
    }
}

pub(super) fn doc_of<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Unavailable("item without doc".into()))?;
    serde_json::from_str(doc).map_err(|e| StoreError::Unavailable(format!("corrupt item: {e}")))
}

pub(super) fn purge_ms(item: &Item) -> i64 {
    item.get("purge_ms")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MAX)
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
            blobs: None,
        }
    }

    /// Keeps bodies over [`parts::INLINE_MAX`] in S3 (without it, every
    /// body stays in its item, which DynamoDB caps at 400 KB).
    pub fn with_blobs(mut self, blobs: Arc<S3Blobs>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    fn item(pk: String, version: u64, doc: String, purge: i64) -> Item {
        HashMap::from([
            (TABLE_KEY.to_string(), s(pk)),
            ("version".to_string(), n(version)),
            ("doc".to_string(), s(doc)),
            ("purge_ms".to_string(), n(purge)),
            (TABLE_TTL_ATTRIBUTE.to_string(), n(purge.div_euclid(1000))),
        ])
    }

    async fn ticket_item(&self, t: &Ticket) -> Result<Item, StoreError> {
        let pk = ticket_key(&t.id);
        let (doc, bodies) = parts::split_ticket(t);
        let mut item = Self::item(pk.clone(), t.version, encode(&doc)?, t.purge_at());
        parts::store(&mut item, &pk, bodies, self.blobs.as_deref()).await?;
        item.insert("status".into(), s(t.status.as_str()));
        // The sweeper's (sparse) index holds what is due: non-terminal
        // tickets, and (in shards of their own, which the backlog's age
        // leaves out) terminal ones with a notification still to send.
        if let Some(due) = t.due_at() {
            let shard = t.id.to_string().bytes().map(u32::from).sum::<u32>() % OVERDUE_SHARDS;
            let notice = if t.status.is_terminal() { "n" } else { "" };
            item.insert(OVERDUE_SHARD.into(), s(format!("{notice}{shard}")));
            item.insert(OVERDUE_DUE.into(), n(due));
        }
        Ok(item)
    }

    async fn record_item(&self, r: &IdemRecord) -> Result<Item, StoreError> {
        let pk = idem_key(&r.key);
        let (doc, bodies) = parts::split_record(r);
        let mut item = Self::item(pk.clone(), r.version, encode(&doc)?, r.expires_at);
        parts::store(&mut item, &pk, bodies, self.blobs.as_deref()).await?;
        Ok(item)
    }

    /// Writes `item` if `condition` holds (`Conflict` otherwise).
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        if condition.contains("#s") {
            put = put.expression_attribute_names("#s", "status");
        }
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        put.send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(e, |se| se.is_conditional_check_failed_exception()))
    }

    /// Inserts unless a live item with this key exists.
    async fn insert(&self, item: Item) -> Result<(), StoreError> {
        let now = n(self.clock.now_ms());
        self.put_if(
            item,
            "attribute_not_exists(pk) OR purge_ms <= :now",
            vec![(":now", now)],
        )
        .await
    }

    /// A strongly consistent read of one item.
    pub(super) async fn get_consistent(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(TABLE_KEY, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    async fn get_live(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let item = self.get_consistent(pk).await?;
        let now = self.clock.now_ms();
        Ok(item.filter(|i| purge_ms(i) > now))
    }

    /// One shard of the sparse `overdue` index, earliest due first; only
    /// items due before `before`, if given.
    fn overdue_shard(&self, shard: &str, before: Option<i64>) -> QueryFluentBuilder {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OVERDUE_INDEX)
            .expression_attribute_names("#s", OVERDUE_SHARD)
            .expression_attribute_values(":s", s(shard));
        match before {
            None => query.key_condition_expression("#s = :s"),
            Some(before) => query
                .key_condition_expression("#s = :s AND #d < :b")
                .expression_attribute_names("#d", OVERDUE_DUE)
                .expression_attribute_values(":b", n(before)),
        }
    }

    async fn delete_at(&self, pk: String, expected_version: u64) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(TABLE_KEY, s(pk))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(expected_version))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(e, |se| se.is_conditional_check_failed_exception()))
    }
}

#[async_trait]
impl TicketStore for DynamoStore {
    async fn create(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.insert(self.ticket_item(ticket).await?).await
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let Some(item) = self.get_live(ticket_key(id)).await? else {
            return Ok(None);
        };
        let mut ticket: Ticket = doc_of(&item)?;
        let bodies = parts::load(&item, TICKET_PARTS, self.blobs.as_deref()).await?;
        parts::join_ticket(&mut ticket, bodies)?;
        Ok(Some(ticket))
    }

    async fn update(
        &self,
        next: &Ticket,
        expected_status: Status,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let values = vec![
            (":s", s(expected_status.as_str())),
            (":v", n(expected_version)),
        ];
        self.put_if(
            self.ticket_item(next).await?,
            "#s = :s AND version = :v",
            values,
        )
        .await
    }

    async fn delete(&self, id: &TicketId, expected_version: u64) -> Result<(), StoreError> {
        self.delete_at(ticket_key(id), expected_version).await
    }

    async fn oldest_due(&self) -> Result<Option<i64>, StoreError> {
        let now = self.clock.now_ms();
        let mut oldest: Option<i64> = None;
        // The earliest live item of each backlog shard, in index order.
        for shard in 0..OVERDUE_SHARDS {
            let mut pages = self
                .overdue_shard(&shard.to_string(), None)
                .limit(10)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.map_err(unavailable)?;
                if purge_ms(&item) <= now {
                    continue;
                }
                let due = item.get(OVERDUE_DUE).and_then(|v| v.as_n().ok());
                if let Some(due) = due.and_then(|d| d.parse::<i64>().ok()) {
                    oldest = Some(oldest.map_or(due, |o| o.min(due)));
                }
                break;
            }
        }
        Ok(oldest)
    }

    async fn overdue(&self, before: i64, limit: usize) -> Result<Vec<TicketId>, StoreError> {
        let now = self.clock.now_ms();
        let mut found = Vec::new();
        let backlog = (0..OVERDUE_SHARDS).map(|n| n.to_string());
        let notices = (0..OVERDUE_SHARDS).map(|n| format!("n{n}"));
        for shard in backlog.chain(notices) {
            let mut pages = self
                .overdue_shard(&shard, Some(before))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.map_err(unavailable)?;
                if purge_ms(&item) <= now {
                    continue;
                }
                let id = item
                    .get(TABLE_KEY)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("T#"))
                    .and_then(|id| id.parse().ok());
                if let Some(id) = id {
                    found.push(id);
                }
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn insert(&self, r: &IdemRecord) -> Result<(), StoreError> {
        let item = self.record_item(r).await?;
        DynamoStore::insert(self, item).await
    }

    async fn get(&self, key: &str) -> Result<Option<IdemRecord>, StoreError> {
        let Some(item) = self.get_live(idem_key(key)).await? else {
            return Ok(None);
        };
        let mut record: IdemRecord = doc_of(&item)?;
        let bodies = parts::load(&item, RECORD_PARTS, self.blobs.as_deref()).await?;
        parts::join_record(&mut record, bodies);
        Ok(Some(record))
    }

    async fn replace(&self, r: &IdemRecord, expected_version: u64) -> Result<(), StoreError> {
        let item = self.record_item(r).await?;
        self.put_if(item, "version = :v", vec![(":v", n(expected_version))])
            .await
    }
}
