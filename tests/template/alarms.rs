//! Every alarm on the gateway's own metrics names a metric the code emits,
//! with exactly the dimensions it is emitted with. CloudWatch tells metrics
//! apart by their whole dimension set, so an alarm that leaves one out (or
//! adds one) watches a metric that never gets a data point, and never fires.

use std::collections::{BTreeMap, BTreeSet};

use failover_adapters::aws::env::METRICS_NAMESPACE;
use failover_core::metrics::{Emf, Metric};
use serde_yaml::Value;

use crate::template;

type Identity = (String, BTreeMap<String, String>);

/// Every (metric name, dimensions) the api and worker functions can emit.
fn emitted() -> BTreeSet<Identity> {
    let mut metrics = vec![
        Metric::SyncAnswered {
            latency_ms: 1.0,
            route: String::new(),
        },
        Metric::CaptureLatency { ms: 1.0 },
        Metric::CaptureFailed,
    ];
    for reason in [
        "timeout",
        "backend_error",
        "circuit_open",
        "overloaded",
        "client_requested",
        "forced",
        "scheduled",
    ] {
        metrics.push(Metric::Failover {
            reason,
            route: String::new(),
            lane: "normal",
        });
    }
    for outcome in [
        "succeeded",
        "rejected",
        "exhausted",
        "expired",
        "unroutable",
        "retried",
        "deferred",
        "paced",
        "scheduled",
        "held",
    ] {
        metrics.push(Metric::WorkerOutcome {
            outcome,
            lane: "normal",
        });
    }
    for to in ["open", "half_open", "closed"] {
        metrics.push(Metric::BreakerTransition {
            to,
            group: String::new(),
        });
    }
    for channel in ["webhook", "sns"] {
        metrics.push(Metric::NotificationExhausted { channel });
    }
    let mut out = BTreeSet::new();
    for service in ["api", "worker"] {
        let emf = Emf {
            namespace: METRICS_NAMESPACE.into(),
            service: service.into(),
        };
        for m in &metrics {
            let doc = emf.document(m, 0);
            let declared = &doc["_aws"]["CloudWatchMetrics"][0];
            let name = declared["Metrics"][0]["Name"].as_str().expect("name");
            for set in declared["Dimensions"].as_array().expect("dimension sets") {
                let dims = set
                    .as_array()
                    .expect("dimension set")
                    .iter()
                    .map(|d| {
                        let d = d.as_str().expect("dimension");
                        (d.to_string(), doc[d].as_str().expect("value").to_string())
                    })
                    .collect();
                out.insert((name.to_string(), dims));
            }
        }
    }
    out
}

/// The gateway metrics an alarm of the template watches.
fn watched(t: &Value) -> Vec<(String, Identity)> {
    let mut found = Vec::new();
    let resources = t["Resources"].as_mapping().expect("resources");
    for (name, r) in resources {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let p = &r["Properties"];
        let mut metrics: Vec<&Value> = Vec::new();
        if p["MetricName"].is_string() {
            metrics.push(p);
        }
        for q in p["Metrics"].as_sequence().into_iter().flatten() {
            if q["MetricStat"]["Metric"].is_mapping() {
                metrics.push(&q["MetricStat"]["Metric"]);
            }
        }
        for m in metrics {
            if m["Namespace"].as_str() != Some(METRICS_NAMESPACE) {
                continue;
            }
            let dims = m["Dimensions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|d| {
                    let value = d["Value"].as_str().expect("literal dimension value");
                    (
                        d["Name"].as_str().expect("name").to_string(),
                        value.to_string(),
                    )
                })
                .collect();
            let metric = m["MetricName"].as_str().expect("metric name").to_string();
            found.push((name.as_str().expect("id").to_string(), (metric, dims)));
        }
    }
    found
}

#[test]
fn alarms_watch_metrics_the_code_emits() {
    let emitted = emitted();
    let watched = watched(&template());
    assert!(
        watched.len() >= 3,
        "expected the gateway's own alarms: {watched:?}"
    );
    for (alarm, identity) in watched {
        assert!(
            emitted.contains(&identity),
            "{alarm} watches {identity:?}, which is never emitted"
        );
    }
}
