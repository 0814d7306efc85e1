//! The embedded durable store: tickets, queue, idempotency records and the
//! publication log in ONE SQLite file.
//!
//! One file means one transaction log: a ticket and its message are each
//! committed (WAL, `synchronous=FULL`) before the API answers 202, and a
//! `kill -9` at any point leaves either the committed rows or nothing. The
//! queue mimics SQS where the worker depends on it: a visibility timeout, a
//! receive count, a receipt that is replaced on every delivery (a stale one
//! cannot delete a redelivered message), and a redrive to the dead-letter
//! table after `max_receives` deliveries.
//!
//! rusqlite is blocking, so nothing here runs on tokio's workers: writes go
//! to one writer thread that commits them in groups ([`writer`]), reads run on
//! the blocking pool over a second connection (WAL lets it read while the
//! writer writes). SQLite serialises writers anyway; one writer connection
//! keeps the code free of `SQLITE_BUSY` handling.

mod board;
mod operator;
mod queue;
mod store;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use failover_core::ports::{Clock, StoreError};
use rusqlite::Connection;
use tokio::sync::Notify;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    purge_at INTEGER NOT NULL,
    due_at INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_due ON tickets (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tickets_purge ON tickets (purge_at);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    lane INTEGER NOT NULL DEFAULT 1,
    since_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_visible ON queue (visible_at, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    dead_at INTEGER NOT NULL,
    lane INTEGER NOT NULL DEFAULT 1,
    since_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_age ON dead_letters (dead_at);
CREATE TABLE IF NOT EXISTS publications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    subject TEXT,
    email TEXT,
    sms TEXT
);
CREATE INDEX IF NOT EXISTS publications_age ON publications (published_at);
CREATE TABLE IF NOT EXISTS drills (
    scope TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS breaker_posts (
    grp TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS breaker_resets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT,
    at_ms INTEGER NOT NULL,
    by TEXT NOT NULL
);
"#;

/// Columns added since the first schema, to databases made before them:
/// a message from before lanes is `normal`, waiting since it was sent; a
/// publication from before notices has none.
const ADDED: [(&str, &str, &str); 7] = [
    ("queue", "lane", "INTEGER NOT NULL DEFAULT 1"),
    ("queue", "since_at", "INTEGER NOT NULL DEFAULT 0"),
    ("dead_letters", "lane", "INTEGER NOT NULL DEFAULT 1"),
    ("dead_letters", "since_at", "INTEGER NOT NULL DEFAULT 0"),
    ("publications", "subject", "TEXT"),
    ("publications", "email", "TEXT"),
    ("publications", "sms", "TEXT"),
];

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, kind) in ADDED {
        let mut columns = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .map_err(unavailable)?;
        let names = columns
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(unavailable)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        if !names.iter().any(|n| n == column) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Rows deleted per statement of a purge: the writer is shared, so a purge
/// of a long backlog goes in slices between the writes of live requests.
const PURGE_SLICE: i64 = 1000;

/// What a purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub tickets: usize,
    pub keys: usize,
    pub publications: usize,
    pub dead_letters: usize,
}

/// Tuning of the embedded queue.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// Deliveries before a message is moved to the dead-letter table (SQS's
    /// `maxReceiveCount`). The worker counts attempts on the ticket itself;
    /// this only catches messages that crash every worker that takes them.
    pub max_receives: u32,
    /// `LANE_AGEING_S`, for the receive order.
    pub lane_ageing: std::time::Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_receives: 100,
            lane_ageing: failover_core::lane::Lanes::default().ageing,
        }
    }
}

/// A row of the publication log (what SNS would have received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub body: String,
    /// What an email and an SMS subscriber would get.
    pub notice: Option<failover_core::notice::Notice>,
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: writer::Writer,
    reader: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    options: SqliteOptions,
    /// Wakes long-polling receivers when a message is sent.
    arrivals: Arc<Notify>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn parse_ids(ids: &[String]) -> Result<Vec<failover_core::ticket::TicketId>, StoreError> {
    ids.iter()
        .map(|id| {
            id.parse()
                .map_err(|_| unavailable(format!("corrupt id {id}")))
        })
        .collect()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let connect = || -> Result<Connection, StoreError> {
            let conn = Connection::open(path).map_err(unavailable)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(unavailable)?;
            // FULL: a commit is on disk before we answer 202, even on power loss.
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(unavailable)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(unavailable)?;
            Ok(conn)
        };
        let conn = connect()?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        migrate(&conn)?;
        let reader = connect()?;
        Ok(Self {
            writer: writer::Writer::start(conn)?,
            reader: Arc::new(Mutex::new(reader)),
            clock,
            options,
            arrivals: Arc::new(Notify::new()),
        })
    }

    /// Runs `f` on the read connection, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| unavailable("connection poisoned"))?;
            f(&guard)
        })
        .await
        .map_err(unavailable)?
    }

    /// Runs `f` atomically in the writer's next group commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(f).await
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The publication log, oldest first (local mode's stand-in for SNS).
    pub async fn publications(&self) -> Result<Vec<Publication>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT event_id, event_type, status, body, subject, email, sms
                     FROM publications ORDER BY seq",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| {
                    let texts: (Option<String>, Option<String>, Option<String>) =
                        (r.get(4)?, r.get(5)?, r.get(6)?);
                    let notice = match texts {
                        (Some(subject), Some(email), Some(sms)) => {
                            Some(failover_core::notice::Notice {
                                subject,
                                email,
                                sms,
                            })
                        }
                        _ => None,
                    };
                    Ok(Publication {
                        event_id: r.get(0)?,
                        event_type: r.get(1)?,
                        status: r.get(2)?,
                        body: r.get(3)?,
                        notice,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    /// Ids of every stored ticket, expired or not (for inspection).
    pub async fn ticket_ids(&self) -> Result<Vec<failover_core::ticket::TicketId>, StoreError> {
        let ids: Vec<String> = self
            .read(|c| {
                let mut stmt = c
                    .prepare("SELECT id FROM tickets ORDER BY id")
                    .map_err(unavailable)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
            })
            .await?;
        parse_ids(&ids)
    }

    /// Local mode's retention, so that the file does not grow without
    /// bound: drops tickets past their retention (a day after they expire,
    /// as DynamoDB's TTL does in AWS mode; reads already hide them),
    /// idempotency records past their expiry, and publications and dead
    /// letters older than `keep`.
    pub async fn purge(&self, keep: std::time::Duration) -> Result<Purged, StoreError> {
        let now = self.now();
        let before = now - keep.as_millis() as i64;
        let slices = [
            ("tickets", "id", "purge_at", now),
            ("idempotency", "key", "expires_at", now),
            ("publications", "seq", "published_at", before),
            ("dead_letters", "id", "dead_at", before),
        ];
        let mut counts = [0usize; 4];
        for (count, (table, key, at, until)) in counts.iter_mut().zip(slices) {
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN \
                 (SELECT {key} FROM {table} WHERE {at} <= ?1 LIMIT {PURGE_SLICE})"
            );
            loop {
                let sql = sql.clone();
                let gone = self
                    .write(move |c| c.execute(&sql, [until]).map_err(unavailable))
                    .await?;
                *count += gone;
                if (gone as i64) < PURGE_SLICE {
                    break;
                }
            }
        }
        let [tickets, keys, publications, dead_letters] = counts;
        Ok(Purged {
            tickets,
            keys,
            publications,
            dead_letters,
        })
    }
}
