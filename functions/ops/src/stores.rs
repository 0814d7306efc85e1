//! Opening the stores the tool acts on: the local file, or the AWS table
//! and queues. Local mode is the default; `TABLE_NAME` in the environment
//! (as the functions have it) means AWS mode, in a build with the `aws`
//! feature.

use std::sync::Arc;

use anyhow::{bail, Context};
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_core::drill::DrillStore;
use failover_core::operator::ports::{DeadLetters, TicketScan};
use failover_core::operator::Stores;
use failover_core::ports::{Clock, Queue, SystemClock, TicketStore};
use failover_core::Policy;

use crate::cli::Cli;

/// The stores, opened.
pub struct Opened {
    pub tickets: Arc<dyn TicketStore>,
    pub queue: Arc<dyn Queue>,
    pub scan: Arc<dyn TicketScan>,
    pub dead: Arc<dyn DeadLetters>,
    pub drills: Arc<dyn DrillStore>,
    pub clock: Arc<dyn Clock>,
    /// `TICKET_TTL_SECONDS`, for a retried ticket that had expired.
    pub ttl_ms: i64,
}

impl Opened {
    pub fn stores(&self) -> Stores<'_> {
        Stores {
            tickets: self.tickets.as_ref(),
            queue: self.queue.as_ref(),
            clock: self.clock.as_ref(),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub async fn open(cli: &Cli) -> anyhow::Result<Opened> {
    let policy = Policy::from_lookup(Policy::default(), &env).map_err(anyhow::Error::msg)?;
    let ttl_ms = policy.ticket_ttl.as_millis() as i64;
    if env("TABLE_NAME").is_some() {
        return aws(ttl_ms, &policy).await;
    }
    let db = cli.data_dir.join("failover.sqlite3");
    if !db.exists() {
        bail!(
            "no database at {} (DATA_DIR or --data-dir: where the server keeps its data)",
            db.display()
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = SqliteOptions {
        lane_ageing: policy.lanes.ageing,
        ..SqliteOptions::default()
    };
    let store = Arc::new(
        SqliteStore::open(&db, clock.clone(), options)
            .with_context(|| format!("opening {}", db.display()))?,
    );
    Ok(Opened {
        tickets: store.clone(),
        queue: store.clone(),
        scan: store.clone(),
        dead: store.clone(),
        drills: store,
        clock,
        ttl_ms,
    })
}

#[cfg(not(feature = "aws"))]
async fn aws(_: i64, _: &Policy) -> anyhow::Result<Opened> {
    bail!(
        "TABLE_NAME is set, but this build has no AWS mode: \
         cargo run --release --features aws --bin failover -- ..."
    )
}

#[cfg(feature = "aws")]
async fn aws(ttl_ms: i64, policy: &Policy) -> anyhow::Result<Opened> {
    use failover_adapters::aws::{sdk_config, DynamoStore, S3Blobs, SqsQueue};
    use failover_core::lane::Lane;

    let need = |name: &str| env(name).with_context(|| format!("{name} is not set"));
    let sdk = sdk_config(
        policy
            .capture_timeout
            .max(std::time::Duration::from_secs(5)),
    )
    .await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        need("TABLE_NAME")?,
        clock.clone(),
    );
    if let Some(bucket) = env("BODY_BUCKET") {
        store = store.with_blobs(Arc::new(S3Blobs::new(S3Blobs::client(&sdk), bucket)));
    }
    let mut queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        need("QUEUE_URL")?,
        env("DLQ_URL"),
    );
    for (lane, name) in [(Lane::Critical, "CRITICAL"), (Lane::Bulk, "BULK")] {
        if let Some(url) = env(&format!("QUEUE_URL_{name}")) {
            queue = queue.with_lane(lane, url, env(&format!("DLQ_URL_{name}")));
        }
    }
    let (store, queue) = (Arc::new(store), Arc::new(queue));
    Ok(Opened {
        tickets: store.clone(),
        queue: queue.clone(),
        scan: store.clone(),
        dead: queue,
        drills: store,
        clock,
        ttl_ms,
    })
}
