//! The local binary, built inside this package so the kill -9 test can
//! spawn it (`CARGO_BIN_EXE_gateway-under-test`). Same code path as
//! `failover-gateway`: configuration from the environment, then `run`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    failover_local::run::init_tracing();
    let config = failover_local::config::LocalConfig::from_env()?;
    failover_local::run::run(config, std::future::pending()).await
}
