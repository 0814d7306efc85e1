//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The operator's tool for a failover gateway: inspect, cancel and retry
/// tickets, and move dead letters back, on the local data directory or (in
/// a build with the `aws` feature, when `TABLE_NAME` is set) on the AWS
/// table and queues. Every change is a compare-and-set, recorded on the
/// ticket.
#[derive(Debug, Parser)]
#[command(name = "failover", version)]
pub struct Cli {
    /// The local data directory (as the server reads it).
    #[arg(long, env = "DATA_DIR", default_value = "./.data", global = true)]
    pub data_dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// AWS mode on this SAM stack: its table and queues from its outputs
    /// (else from TABLE_NAME, QUEUE_URL, ... as the functions have them).
    #[arg(long, env = "FAILOVER_STACK", global = true)]
    pub stack: Option<String>,
    /// Who is acting, as recorded on each ticket changed (default: $USER).
    #[arg(long, env = "FAILOVER_OPERATOR", global = true)]
    pub by: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tickets: list, show, cancel, retry.
    #[command(subcommand)]
    Tickets(Tickets),
    /// The dead-letter queues: list, redrive.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Drills: override the failover mode for a while, fleet-wide.
    #[command(subcommand)]
    Drill(DrillCmd),
    /// The circuit breakers: show, reset.
    #[command(subcommand)]
    Breaker(BreakerCmd),
}

#[derive(Debug, Subcommand)]
pub enum BreakerCmd {
    /// Each breaker group: state, error and slow rates, next probe.
    Show {
        /// The routes file the functions read (AWS mode: which groups).
        #[arg(long, env = "ROUTES_FILE")]
        routes_file: Option<PathBuf>,
    },
    /// Close breakers now, on a fresh window (the backend is known to be
    /// back): every instance admits requests within one health-cache period.
    Reset(BreakerReset),
}

#[derive(Debug, Args)]
pub struct BreakerReset {
    /// One breaker group (else every group).
    #[arg(long)]
    pub group: Option<String>,
    /// The routes file the functions read (AWS mode: which groups).
    #[arg(long, env = "ROUTES_FILE")]
    pub routes_file: Option<PathBuf>,
    /// Do it without asking, even for more than one group.
    #[arg(long, short)]
    pub yes: bool,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum DrillCmd {
    /// Every instance switches within one health-cache period, and back
    /// when the drill ends (by itself, or with `drill stop`).
    Start {
        /// async: every request is queued (reason forced); sync: every
        /// request is tried, whatever the breaker says.
        #[arg(long, value_parser = ["async", "sync"])]
        mode: String,
        /// How long (30s, 10m, 2h; at most 24h).
        #[arg(long = "for")]
        duration: String,
        #[command(flatten)]
        scope: DrillScope,
    },
    /// End the drill of a scope, or every drill.
    Stop {
        #[command(flatten)]
        scope: DrillScope,
    },
    /// The drills in force.
    Show,
}

/// A drill's scope: one route, one breaker group, or (neither) everything.
#[derive(Debug, Args)]
pub struct DrillScope {
    /// One route, by name (`requests` without a routes file).
    #[arg(long, conflicts_with = "group")]
    pub route: Option<String>,
    /// One breaker group.
    #[arg(long)]
    pub group: Option<String>,
    /// The routes file the server reads, to check the names against.
    #[arg(long, env = "ROUTES_FILE")]
    pub routes_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Tickets {
    /// Tickets matching every filter given, newest first.
    List(Filters),
    /// One ticket as stored: its attempts, notifications and actions.
    Show { id: String },
    /// Cancel queued tickets: they end failed/cancelled and never run.
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        safety: Safety,
    },
    /// Run failed tickets again under the same id, with a fresh attempt
    /// budget (exhausted, expired and unroutable ones; rejected and
    /// cancelled ones only when asked).
    Retry {
        ids: Vec<String>,
        /// Every failed ticket that failed at or after this time (RFC 3339,
        /// or an age such as 30m, 2h, 1d).
        #[arg(long, conflicts_with = "ids")]
        failed_since: Option<String>,
        /// Also tickets the backend rejected (4xx).
        #[arg(long)]
        include_rejected: bool,
        /// Also tickets that were cancelled.
        #[arg(long)]
        include_cancelled: bool,
        #[command(flatten)]
        safety: Safety,
    },
}

#[derive(Debug, Args)]
pub struct Filters {
    #[arg(long, value_parser = ["queued", "processing", "succeeded", "failed"])]
    pub status: Option<String>,
    /// Why it went async.
    #[arg(long, value_parser = [
        "timeout", "backend_error", "circuit_open", "overloaded",
        "client_requested", "forced", "scheduled",
    ])]
    pub reason: Option<String>,
    #[arg(long, value_parser = ["critical", "normal", "bulk"])]
    pub lane: Option<String>,
    /// The route's name (`requests` for POST /requests).
    #[arg(long)]
    pub route: Option<String>,
    /// The failure kind.
    #[arg(long, value_parser = ["rejected", "exhausted", "expired", "unroutable", "cancelled"])]
    pub kind: Option<String>,
    /// Only tickets created longer ago than this (30s, 10m, 2h, 1d).
    #[arg(long)]
    pub older_than: Option<String>,
    /// Only tickets created within this (30s, 10m, 2h, 1d).
    #[arg(long)]
    pub newer_than: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
}

/// What every action that changes things takes.
#[derive(Debug, Args)]
pub struct Safety {
    /// Do it without asking, even for more than one ticket.
    #[arg(long, short)]
    pub yes: bool,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
}

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// Dead letters with why they died (on SQS, reading one hides it for a
    /// few seconds).
    List {
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Move dead letters back to their lane's queue, oldest first.
    Redrive {
        #[command(flatten)]
        safety: Safety,
    },
}
