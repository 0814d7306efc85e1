//! `cargo run --release`: local mode. Wiring only; see the crate docs.

use anyhow::Context;
use failover_local::config::LocalConfig;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    failover_local::run::init_tracing();
    let config = LocalConfig::from_env().context("invalid configuration")?;
    failover_local::run::run(config, failover_local::run::shutdown_signal()).await
}
