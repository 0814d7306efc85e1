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
        let port = parse("PORT", get("PORT"), 3000)?;
        // Notices link to this process unless a public address is given.
        let own = format!("http://127.0.0.1:{port}");
        let get = |name: &str| match name {
            "PUBLIC_BASE_URL" => (get(name).filter(|v| !v.trim().is_empty())).or(Some(own.clone())),
            _ => get(name),
        };
        Ok(Self {
            port,
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
            policy: Policy::from_lookup(base, &get)?,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_link_to_this_process_unless_a_public_address_is_given() {
        let id = "0190a5b2-7c3e-7d4a-9b1f-2c3d4e5f6a7b";
        let t = |vars: &[(&str, &str)]| {
            let map: std::collections::HashMap<_, _> = vars.iter().copied().collect();
            let config = LocalConfig::from_lookup(&|k| map.get(k).map(|v| v.to_string()));
            let policy = config.expect("valid").policy;
            let req = failover_core::ticket::CapturedRequest::new("{}", "", "r");
            let mut ticket = failover_core::ticket::Ticket::new(
                id.parse().expect("id"),
                failover_core::ticket::Reason::Timeout,
                req,
                0,
                1,
            );
            ticket.status = failover_core::ticket::Status::Succeeded;
            policy.notices.render(&ticket).sms
        };
        assert_eq!(
            t(&[("PORT", "4000")]),
            format!("Request succeeded: http://127.0.0.1:4000/tickets/{id}")
        );
        assert_eq!(
            t(&[("PUBLIC_BASE_URL", "https://pay.example.com/")]),
            format!("Request succeeded: https://pay.example.com/tickets/{id}")
        );
    }
}
