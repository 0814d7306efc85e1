//! Local mode's own settings, on top of the shared [`Policy`].

use std::path::PathBuf;

use failover_core::config::ConfigError;
use failover_core::Policy;

#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `PORT` (default 3000), always on 127.0.0.1.
    pub port: u16,
    /// `DATA_DIR` (default `./.data`): holds the SQLite file.
    pub data_dir: PathBuf,
    /// `BACKEND_URL`; unset starts the built-in demo backend.
    pub backend_url: Option<String>,
    /// `ROUTES_FILE`: the API's routes (TOML); unset, `POST /requests` goes
    /// to `BACKEND_URL`.
    pub routes_file: Option<PathBuf>,
    /// `WORKER_CONCURRENCY` (default 16): messages processed at once.
    pub worker_concurrency: usize,
    pub policy: Policy,
}

fn parse<T: std::str::FromStr>(
    name: &'static str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match raw.filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError {
            name,
            value: v,
            problem: e.to_string(),
        }),
    }
}

impl LocalConfig {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Local mode lets a developer receive webhooks on their own machine.
        let base = Policy {
            allow_loopback_callbacks: true,
            ..Policy::default()
        };
        Ok(Self {
            port: parse("PORT", get("PORT"), 3000)?,
            data_dir: PathBuf::from(
                get("DATA_DIR")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "./.data".into()),
            ),
            backend_url: get("BACKEND_URL").filter(|v| !v.trim().is_empty()),
            routes_file: get("ROUTES_FILE")
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
            worker_concurrency: parse("WORKER_CONCURRENCY", get("WORKER_CONCURRENCY"), 16)?,
            policy: Policy::from_lookup(base, get)?,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}
