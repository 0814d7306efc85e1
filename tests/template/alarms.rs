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

/// The dashboard's body as CloudWatch gets it, with each `${X}` of its
/// `!Sub` standing as `X`.
fn dashboard(t: &Value) -> serde_json::Value {
    let body = match &t["Resources"]["Dashboard"]["Properties"]["DashboardBody"] {
        Value::Tagged(s) if s.tag == "!Sub" => s.value.as_str().expect("text").to_string(),
        other => panic!("DashboardBody is not a !Sub: {other:?}"),
    };
    let mut text = String::new();
    let mut rest = body.as_str();
    while let Some(at) = rest.find("${") {
        text.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("closed ${") + at;
        text.push_str(&rest[at + 2..end]);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    serde_json::from_str(&text).expect("the dashboard body is JSON")
}

/// Every graph of the dashboard draws a metric that exists: the gateway's
/// with the dimensions it is emitted with (a `SEARCH` by its dimension
/// set), or a queue of the stack's; and it draws each thing an incident
/// needs.
#[test]
fn the_dashboard_draws_what_is_emitted() {
    let t = template();
    let emitted = emitted();
    let kinds: BTreeSet<(String, BTreeSet<String>)> = emitted
        .iter()
        .map(|(name, dims)| (name.clone(), dims.keys().cloned().collect()))
        .collect();
    let mut drawn: BTreeSet<String> = BTreeSet::new();
    let d = dashboard(&t);
    for w in d["widgets"].as_array().expect("widgets") {
        let mut previous: Vec<serde_json::Value> = Vec::new();
        for row in w["properties"]["metrics"].as_array().expect("metrics") {
            let row = row.as_array().expect("a metric row");
            if let Some(expr) = row[0]["expression"].as_str() {
                // SEARCH('{Namespace,Dim,...} MetricName="Name"', ...)
                let set = &expr[expr.find('{').expect("{") + 1..expr.find('}').expect("}")];
                let mut parts = set.split(',');
                assert_eq!(parts.next(), Some(METRICS_NAMESPACE), "{expr}");
                let dims: BTreeSet<String> = parts.map(str::to_string).collect();
                let name = expr.split("MetricName=\"").nth(1).expect("MetricName");
                let name = &name[..name.find('"').expect("quote")];
                assert!(
                    kinds.contains(&(name.to_string(), dims.clone())),
                    "{name} is never emitted with {dims:?}"
                );
                drawn.insert(name.to_string());
                continue;
            }
            // `"..."` repeats the previous row's leading values, so that
            // the values given replace its last ones.
            let given: Vec<serde_json::Value> = row
                .iter()
                .filter(|v| *v != "..." && v.is_string())
                .cloned()
                .collect();
            let full: Vec<serde_json::Value> = match row[0].as_str() {
                Some("...") => {
                    let mut f = previous[..previous.len() - given.len()].to_vec();
                    f.extend(given);
                    f
                }
                _ => given,
            };
            let strings: Vec<&str> = full.iter().filter_map(|v| v.as_str()).collect();
            let (namespace, name) = (strings[0], strings[1]);
            let dims: BTreeMap<String, String> = strings[2..]
                .chunks(2)
                .map(|p| (p[0].to_string(), p[1].to_string()))
                .collect();
            match namespace {
                "AWS/SQS" => {
                    let queue = &dims["QueueName"];
                    let resource = queue.trim_end_matches(".QueueName");
                    assert_eq!(
                        t["Resources"][resource]["Type"], "AWS::SQS::Queue",
                        "{queue}"
                    );
                    drawn.insert(format!("{name} {resource}"));
                }
                ns => {
                    assert_eq!(ns, METRICS_NAMESPACE);
                    assert!(
                        emitted.contains(&(name.to_string(), dims.clone())),
                        "{name} is never emitted with {dims:?}"
                    );
                    drawn.insert(name.to_string());
                }
            }
            previous = full;
        }
    }
    for needed in [
        "Failover",
        "SyncLatency",
        "BreakerTransition",
        "WorkerOutcome",
        "NotificationExhausted",
        "CaptureFailed",
    ] {
        assert!(drawn.contains(needed), "the dashboard lacks {needed}");
    }
    for lane in ["CriticalQueue", "RequestQueue", "BulkQueue"] {
        for metric in [
            "ApproximateNumberOfMessagesVisible",
            "ApproximateAgeOfOldestMessage",
        ] {
            assert!(
                drawn.contains(&format!("{metric} {lane}")),
                "{metric} {lane}"
            );
        }
    }
    for dlq in [
        "CriticalDeadLetterQueue",
        "RequestDeadLetterQueue",
        "BulkDeadLetterQueue",
    ] {
        let key = format!("ApproximateNumberOfMessagesVisible {dlq}");
        assert!(drawn.contains(&key), "{key}");
    }
    let url = &t["Outputs"]["DashboardUrl"]["Value"];
    assert!(serde_yaml::to_string(url).unwrap().contains("${Dashboard}"));
}
