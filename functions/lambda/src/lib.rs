//! # failover-lambda
//!
//! AWS mode's four functions, as thin as local mode's `main`: each builds
//! the AWS adapters once per instance and hands events to the code local
//! mode runs too.
//!
//! - [`api`]: the ONE router of `failover-api`, on `lambda_http`, behind API
//!   Gateway.
//! - [`worker`]: SQS batches through `failover_worker::Worker::handle`, and
//!   the scheduled sweeper.
//! - `events` ([`api::run_events`]): the router's event-stream route alone,
//!   streamed through a function URL.
//!
//! **One executable, four handlers.** The functions share one `bootstrap`,
//! and the function's `Handler` setting (`api`, `worker`, `sweeper` or `events` in
//! `template.yaml`), which Lambda hands every custom runtime as `_HANDLER`,
//! picks the entry point. Three binaries would each pay the release
//! profile's link-time optimisation over the whole AWS SDK (about two
//! minutes each on two cores, for every `sam build` after a change); one
//! pays it once, and the artefact the tests run is the one all three
//! functions deploy. A function whose handler is missing or unknown stops
//! at start with a message naming `_HANDLER`, before taking any event.
//!
//! This package exists so that `sam build` (which can pass no cargo
//! feature) finds the binary with everything it needs, and so that nothing
//! else in the workspace depends on Lambda.

pub mod api;
pub mod worker;

use std::str::FromStr;

/// Which function this instance is: the `Handler` of `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `api`: the HTTP API behind API Gateway.
    Api,
    /// `worker`: SQS batches.
    Worker,
    /// `sweeper`: the scheduled re-enqueue of lost tickets.
    Sweeper,
    /// `events`: a ticket's Server-Sent Events, streamed through a
    /// function URL (API Gateway buffers responses; a function URL in
    /// `RESPONSE_STREAM` mode does not).
    Events,
}

impl Handler {
    pub const ALL: [Handler; 4] = [
        Handler::Api,
        Handler::Worker,
        Handler::Sweeper,
        Handler::Events,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Handler::Api => "api",
            Handler::Worker => "worker",
            Handler::Sweeper => "sweeper",
            Handler::Events => "events",
        }
    }

    /// The handler Lambda configured (`_HANDLER`).
    pub fn from_env() -> Result<Self, UnknownHandler> {
        std::env::var("_HANDLER").unwrap_or_default().parse()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("_HANDLER is {0:?}: set the function's Handler to api, worker, sweeper or events (template.yaml)")]
pub struct UnknownHandler(String);

impl FromStr for Handler {
    type Err = UnknownHandler;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Handler::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| UnknownHandler(s.to_string()))
    }
}

/// Runs the function `_HANDLER` names until Lambda stops the instance.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    match Handler::from_env()? {
        Handler::Api => api::run().await,
        Handler::Worker => worker::run().await,
        Handler::Sweeper => worker::run_sweeper().await,
        Handler::Events => api::run_events().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_parse_by_name_and_nothing_else_does() {
        for h in Handler::ALL {
            assert_eq!(h.name().parse::<Handler>().ok(), Some(h));
        }
        for bad in ["", "bootstrap", "API", " api", "api.handler"] {
            let err = bad.parse::<Handler>().expect_err(bad);
            assert!(err.to_string().contains("_HANDLER"), "{err}");
        }
    }
}
