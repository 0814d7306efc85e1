//! # failover-ops
//!
//! The operator's tool, `failover`: what an operator of a payment API needs
//! in an emergency without writing SQL or DynamoDB queries. See what is
//! stuck and why (`tickets list`, `tickets show`, `dlq list`), run again
//! what failed once the backend is fixed (`tickets retry`), cancel what
//! must not run any more (`tickets cancel`), and move dead letters back
//! (`dlq redrive`), rehearse a failover without a redeploy (`drill
//! start`, `drill stop`: see [`failover_core::drill`]), and close a
//! breaker by hand once the backend is known to be back (`breaker show`,
//! `breaker reset`).
//!
//! It opens the stores directly with the operator's own credentials (no
//! network surface of its own: nothing administrative is reachable through
//! the public API), through the same adapters as the server, and changes
//! tickets only through [`failover_core::operator`]: compare-and-sets like
//! the worker's, each recorded on the ticket and logged. Actions on more
//! than one ticket ask first (`--yes` does not), `--dry-run` says what
//! would happen, and `--max` bounds every action.
//!
//! Exit codes: 0 done; 1 something was refused (a ticket in the wrong
//! state, an unknown id, a confirmation declined); 2 bad usage; 3 the
//! stores could not be opened or read.

mod breaker;
mod cli;
mod dlq;
mod drill;
mod output;
mod stores;
mod tickets;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use failover_core::operator::RetryScope;

use crate::cli::{BreakerCmd, Cli, Command, Dlq, DrillCmd, Safety, Tickets};

/// How a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    Done,
    Refused,
}

/// The command cannot be run as given (exit 2, like clap's own errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub String);

/// Whether to go ahead with `what` on `n` items: yes for one, with
/// `--yes`, or when the person at the terminal says so.
pub(crate) fn confirm(what: &str, n: usize, safety: &Safety) -> anyhow::Result<bool> {
    if n <= 1 || safety.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        let why = format!("{what}: confirm with --yes, or see what would be done with --dry-run");
        return Err(Usage(why).into());
    }
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn operator(cli: &Cli) -> String {
    let name = cli
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("operator:{name}")
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let opened = stores::open(&cli).await?;
    let (o, json, by) = (&opened, cli.json, operator(&cli));
    match &cli.command {
        Command::Tickets(Tickets::List(filters)) => tickets::list(o, filters, json).await,
        Command::Tickets(Tickets::Show { id }) => tickets::show(o, id, json).await,
        Command::Tickets(Tickets::Cancel { ids, safety }) => {
            tickets::cancel(o, ids, &by, safety, json).await
        }
        Command::Tickets(Tickets::Retry {
            ids,
            failed_since,
            include_rejected,
            include_cancelled,
            safety,
        }) => {
            let args = tickets::RetryArgs {
                ids,
                failed_since: failed_since.as_deref(),
                scope: RetryScope {
                    rejected: *include_rejected,
                    cancelled: *include_cancelled,
                },
            };
            tickets::retry(o, args, &by, safety, json).await
        }
        Command::Dlq(Dlq::List { max }) => dlq::list(o, *max, json).await,
        Command::Dlq(Dlq::Redrive { safety }) => dlq::redrive(o, safety, &by, json).await,
        Command::Drill(DrillCmd::Start {
            mode,
            duration,
            scope,
        }) => drill::start(o, mode, duration, scope, &by, json).await,
        Command::Drill(DrillCmd::Stop { scope }) => drill::stop(o, scope, &by, json).await,
        Command::Drill(DrillCmd::Show) => drill::show(o, json).await,
        Command::Breaker(BreakerCmd::Show { routes_file }) => {
            breaker::show(o, routes_file.as_deref(), json).await
        }
        Command::Breaker(BreakerCmd::Reset(args)) => breaker::reset(o, args, &by, json).await,
    }
}

/// Logs what the tool changes to stderr (`RUST_LOG` overrides): each
/// operator action on a ticket, drill, dead letter or breaker, so that a
/// terminal session or a CI job keeps a trail besides the tickets' own.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,failover_core::operator=info,failover_ops=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("failover: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Report::Done) => ExitCode::SUCCESS,
        Ok(Report::Refused) => ExitCode::from(1),
        Err(e) if e.is::<Usage>() => {
            eprintln!("failover: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("failover: {e:#}");
            ExitCode::from(3)
        }
    }
}
