//! The operator's ports: reading every ticket, and the dead letters.
//!
//! The engine and the worker never need these (they go by id and by queue
//! message), so they are traits of their own, implemented by the stores
//! the operator's tool opens: the embedded SQLite file and the AWS table
//! and queues. Both pass the same conformance suite.

use async_trait::async_trait;

use crate::lane::Lane;
use crate::ports::{QueueError, StoreError};
use crate::ticket::Ticket;

/// One page of a scan over every stored ticket.
#[derive(Debug, Clone, Default)]
pub struct TicketPage {
    pub tickets: Vec<Ticket>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<String>,
}

#[async_trait]
pub trait TicketScan: Send + Sync {
    /// The tickets after `cursor` (from the previous page; `None` for the
    /// first), past retention ones left out, in an order the store
    /// chooses: `limit` of them unless the scan ends (a store that reads in
    /// pages of its own may return the rest of its page too). A filter is applied by the caller: the tool is for
    /// incidents, read rarely, and a scan keeps the stores free of
    /// indexes the hot path would pay for.
    async fn scan(&self, cursor: Option<String>, limit: usize) -> Result<TicketPage, StoreError>;
}

/// A message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// Why it died, where the queue says (the worker's reason locally; SQS
    /// keeps none, the count of receives is the reason).
    pub reason: Option<String>,
    pub receive_count: u32,
    pub lane: Lane,
    /// Epoch ms it was first sent, where known.
    pub sent_at: Option<i64>,
}

#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `max` dead letters, oldest first where the queue can tell. On
    /// SQS reading receives: the messages are hidden for a few seconds
    /// (and stay in the dead-letter queue).
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// Moves up to `max` dead letters back to their lane's queue as fresh
    /// messages; returns how many moved.
    async fn redrive(&self, max: usize) -> Result<u64, QueueError>;
}
