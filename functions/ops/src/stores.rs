//! Opening the stores the tool acts on: the local file, or the AWS table
//! and queues. Local mode is the default; `--stack NAME` (the names from
//! the SAM stack's outputs) or `TABLE_NAME` in the environment (the names
//! as the functions have them) means AWS mode, in a build with the `aws`
//! feature.

use std::sync::Arc;

use anyhow::{bail, Context};
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_core::drill::DrillStore;
use failover_core::operator::ports::{DeadLetters, TicketScan};
use failover_core::operator::Stores;
use failover_core::ports::{Clock, Queue, SystemClock, TicketStore};
use failover_core::route::RouteTable;
use failover_core::Policy;

use crate::cli::Cli;

/// The stores, opened.
pub struct Opened {
    pub tickets: Arc<dyn TicketStore>,
    pub queue: Arc<dyn Queue>,
    pub scan: Arc<dyn TicketScan>,
    pub dead: Arc<dyn DeadLetters>,
    pub drills: Arc<dyn DrillStore>,
    pub breakers: crate::breaker::Source,
    pub clock: Arc<dyn Clock>,
    /// The settings as the functions read them (breaker thresholds, TTL).
    pub policy: Policy,
}

impl Opened {
    /// `TICKET_TTL_SECONDS`, for a retried ticket that had expired.
    pub fn ttl_ms(&self) -> i64 {
        self.policy.ticket_ttl.as_millis() as i64
    }

    pub fn stores(&self) -> Stores<'_> {
        Stores {
            tickets: self.tickets.as_ref(),
            queue: self.queue.as_ref(),
            clock: self.clock.as_ref(),
        }
    }
}

/// The routes the server has: its `ROUTES_FILE`, or the single default
/// route (`requests`, one breaker group).
pub fn routes(file: Option<&std::path::Path>, policy: &Policy) -> anyhow::Result<RouteTable> {
    Ok(match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("ROUTES_FILE {}: cannot read it", path.display()))?;
            RouteTable::parse(&text, &path.display().to_string(), policy)?
        }
        None => RouteTable::single("http://127.0.0.1/", policy.clone().into())?,
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub async fn open(cli: &Cli) -> anyhow::Result<Opened> {
    let policy = Policy::from_lookup(Policy::default(), &env).map_err(anyhow::Error::msg)?;
    if cli.stack.is_some() || env("TABLE_NAME").is_some() {
        return aws(cli.stack.as_deref(), policy).await;
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
        drills: store.clone(),
        breakers: crate::breaker::Source::Board {
            board: store,
            period: policy.health_cache,
        },
        clock,
        policy,
    })
}

#[cfg(not(feature = "aws"))]
async fn aws(_: Option<&str>, _: Policy) -> anyhow::Result<Opened> {
    bail!(
        "AWS mode (--stack or TABLE_NAME) needs the AWS SDK, which this build leaves out: \
         cargo run --release --features aws --bin failover -- ..."
    )
}

/// The stack output that holds each setting the functions read from their
/// environment.
#[cfg(feature = "aws")]
const OUTPUTS: [(&str, &str); 8] = [
    ("TABLE_NAME", "TableName"),
    ("BODY_BUCKET", "BodyBucketName"),
    ("QUEUE_URL", "QueueUrl"),
    ("DLQ_URL", "DeadLetterQueueUrl"),
    ("QUEUE_URL_CRITICAL", "CriticalQueueUrl"),
    ("DLQ_URL_CRITICAL", "CriticalDeadLetterQueueUrl"),
    ("QUEUE_URL_BULK", "BulkQueueUrl"),
    ("DLQ_URL_BULK", "BulkDeadLetterQueueUrl"),
];

/// The settings, from the stack's outputs or else the environment.
#[cfg(feature = "aws")]
async fn settings(
    sdk: &aws_config::SdkConfig,
    stack: Option<&str>,
) -> anyhow::Result<std::collections::HashMap<&'static str, String>> {
    let Some(name) = stack else {
        return Ok(OUTPUTS
            .iter()
            .filter_map(|(var, _)| Some((*var, env(var)?)))
            .collect());
    };
    let out = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .with_context(|| format!("reading the outputs of stack {name}"))?;
    let outputs: Vec<_> = out
        .stacks()
        .first()
        .with_context(|| format!("no stack {name}"))?
        .outputs()
        .to_vec();
    let value = |key: &str| {
        outputs
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value().map(str::to_string))
    };
    Ok(OUTPUTS
        .iter()
        .filter_map(|(var, key)| Some((*var, value(key)?)))
        .collect())
}

#[cfg(feature = "aws")]
async fn aws(stack: Option<&str>, policy: Policy) -> anyhow::Result<Opened> {
    use failover_adapters::aws::{sdk_config, DynamoStore, S3Blobs, SqsQueue};
    use failover_core::lane::Lane;

    let sdk = sdk_config(
        policy
            .capture_timeout
            .max(std::time::Duration::from_secs(5)),
    )
    .await;
    let set = settings(&sdk, stack).await?;
    let get = |name: &str| set.get(name).cloned();
    let where_ = stack.map_or("the environment".to_string(), |s| format!("stack {s}"));
    let need = |name: &str| get(name).with_context(|| format!("no {name} in {where_}"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        need("TABLE_NAME")?,
        clock.clone(),
    );
    if let Some(bucket) = get("BODY_BUCKET") {
        store = store.with_blobs(Arc::new(S3Blobs::new(S3Blobs::client(&sdk), bucket)));
    }
    let mut queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        need("QUEUE_URL")?,
        get("DLQ_URL"),
    );
    for (lane, name) in [(Lane::Critical, "CRITICAL"), (Lane::Bulk, "BULK")] {
        if let Some(url) = get(&format!("QUEUE_URL_{name}")) {
            queue = queue.with_lane(lane, url, get(&format!("DLQ_URL_{name}")));
        }
    }
    let (store, queue) = (Arc::new(store), Arc::new(queue));
    Ok(Opened {
        tickets: store.clone(),
        queue: queue.clone(),
        scan: store.clone(),
        dead: queue,
        drills: store.clone(),
        breakers: crate::breaker::fleet(store.as_ref().clone()),
        clock,
        policy,
    })
}
