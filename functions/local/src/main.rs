//! `cargo run --release`: local mode. Wiring only; see the crate docs.

use anyhow::Context;
use failover_local::config::LocalConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    failover_local::run::init_tracing();
    let config = LocalConfig::from_env().context("invalid configuration")?;
    failover_local::run::run(config, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests and messages in progress");
}
