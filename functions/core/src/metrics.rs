//! Metrics: what an operator alarms on.
//!
//! The engine and the worker report [`Metric`]s through the [`Metrics`]
//! port. In Lambda they become CloudWatch Embedded Metric Format lines on
//! stdout ([`Emf`]), which CloudWatch Logs turns into metrics with no API
//! call and no extra latency; local mode logs them.

use serde_json::{json, Map, Value};

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// The backend answered in time (2xx-4xx), on this route.
    SyncAnswered { latency_ms: f64, route: String },
    /// A request of this route and lane went async, with its reason.
    Failover {
        reason: &'static str,
        route: String,
        lane: &'static str,
    },
    /// Ticket + message written (the time the 202 waited for).
    CaptureLatency { ms: f64 },
    /// A capture failed and the client got 503.
    CaptureFailed,
    /// What the worker did with a message of this lane: succeeded,
    /// rejected, exhausted, expired, unroutable, retried, or put it off
    /// (deferred, paced, scheduled, held).
    WorkerOutcome {
        outcome: &'static str,
        lane: &'static str,
    },
    /// The breaker of this group changed state.
    BreakerTransition { to: &'static str, group: String },
    /// A notification channel (`webhook` or `topic`) used every attempt
    /// without delivering: its receiver never heard of the outcome.
    NotificationExhausted { channel: &'static str },
}

pub trait Metrics: Send + Sync {
    fn record(&self, metric: Metric);
}

/// Metrics as `tracing` events (local mode, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogMetrics;

impl Metrics for LogMetrics {
    fn record(&self, metric: Metric) {
        tracing::debug!(?metric, "metric");
    }
}

/// CloudWatch Embedded Metric Format, one JSON line per metric on stdout.
#[derive(Debug, Clone)]
pub struct Emf {
    pub namespace: String,
    /// The `Service` dimension: `api` or `worker`.
    pub service: String,
}

impl Emf {
    /// The EMF document for one metric at `timestamp_ms`.
    pub fn document(&self, metric: &Metric, timestamp_ms: i64) -> Value {
        let (name, unit, value, extra): (&str, &str, f64, Vec<(&str, &str)>) = match metric {
            Metric::SyncAnswered { latency_ms, route } => (
                "SyncLatency",
                "Milliseconds",
                *latency_ms,
                vec![("Route", route)],
            ),
            Metric::Failover {
                reason,
                route,
                lane,
            } => (
                "Failover",
                "Count",
                1.0,
                vec![("Reason", reason), ("Route", route), ("Lane", lane)],
            ),
            Metric::CaptureLatency { ms } => ("CaptureLatency", "Milliseconds", *ms, vec![]),
            Metric::CaptureFailed => ("CaptureFailed", "Count", 1.0, vec![]),
            Metric::WorkerOutcome { outcome, lane } => (
                "WorkerOutcome",
                "Count",
                1.0,
                vec![("Outcome", outcome), ("Lane", lane)],
            ),
            Metric::BreakerTransition { to, group } => (
                "BreakerTransition",
                "Count",
                1.0,
                vec![("State", to), ("Group", group)],
            ),
            Metric::NotificationExhausted { channel } => (
                "NotificationExhausted",
                "Count",
                1.0,
                vec![("Channel", channel)],
            ),
        };
        // CloudWatch tells metrics apart by their whole set of dimensions,
        // so a metric with more dimensions is also declared with each alone
        // and without any: an alarm on the per-service total then finds
        // it, and a dashboard can split it by route or breaker group. An
        // empty value (no routes file) is no dimension.
        let mut dims = Vec::new();
        let mut doc = Map::new();
        doc.insert("Service".into(), Value::String(self.service.clone()));
        for (dim, v) in extra.into_iter().filter(|(_, v)| !v.is_empty()) {
            dims.push(vec!["Service", dim]);
            doc.insert(dim.into(), Value::String(v.to_string()));
        }
        dims.push(vec!["Service"]);
        doc.insert(name.into(), json!(value));
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dims,
                    "Metrics": [{"Name": name, "Unit": unit}],
                }],
            }),
        );
        Value::Object(doc)
    }
}

impl Metrics for Emf {
    fn record(&self, metric: Metric) {
        let now = chrono::Utc::now().timestamp_millis();
        println!("{}", self.document(&metric, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_documents_declare_what_they_carry() {
        let emf = Emf {
            namespace: "FailoverGateway".into(),
            service: "api".into(),
        };
        let failover = Metric::Failover {
            reason: "timeout",
            route: String::new(),
            lane: "",
        };
        let d = emf.document(&failover, 42);
        assert_eq!(d["Failover"], 1.0);
        assert_eq!(d["Reason"], "timeout");
        assert_eq!(d["Service"], "api");
        let m = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "FailoverGateway");
        assert_eq!(m["Dimensions"], json!([["Service", "Reason"], ["Service"]]));
        assert_eq!(m["Metrics"][0]["Name"], "Failover");
        assert_eq!(d["_aws"]["Timestamp"], 42);
        let routed = Metric::Failover {
            reason: "timeout",
            route: "refund".into(),
            lane: "bulk",
        };
        let d = emf.document(&routed, 42);
        assert_eq!(
            (&d["Route"], &d["Lane"]),
            (&json!("refund"), &json!("bulk"))
        );
        let sets = &d["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
        assert_eq!(
            *sets,
            json!([
                ["Service", "Reason"],
                ["Service", "Route"],
                ["Service", "Lane"],
                ["Service"]
            ])
        );
        let plain = emf.document(&Metric::CaptureFailed, 42);
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service"]])
        );
    }
}
