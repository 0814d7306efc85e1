//! The local binary, built inside this package so the process tests can
//! spawn it (`CARGO_BIN_EXE_gateway-under-test`). The same three lines as
//! `functions/local/src/main.rs`.

use anyhow::Context;
use failover_local::config::LocalConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    failover_local::run::init_tracing();
    let config = LocalConfig::from_env().context("invalid configuration")?;
    failover_local::run::run(config, failover_local::run::shutdown_signal()).await
}
