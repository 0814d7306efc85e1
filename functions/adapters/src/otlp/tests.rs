use std::collections::HashMap;
use std::time::Duration;

use failover_core::trace::{Open, SpanKind, TraceContext, Tracer};

use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn nothing_is_exported_without_an_endpoint_or_when_disabled() {
    assert_eq!(Settings::from_env(&env(&[])).unwrap(), None);
    let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    assert_eq!(
        Settings::from_env(&env(&[on, ("OTEL_SDK_DISABLED", "true")])).unwrap(),
        None
    );
    assert_eq!(
        Settings::from_env(&env(&[on, ("OTEL_TRACES_EXPORTER", "none")])).unwrap(),
        None
    );
}

#[test]
fn the_standard_variables_are_read() {
    let s = Settings::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x=1"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=pay,deployment.environment=prod",
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("AWS_LAMBDA_FUNCTION_NAME", "api"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(s.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(
        s.headers,
        vec![("api-key".into(), "a b".into()), ("x".into(), "1".into())]
    );
    assert_eq!(s.delay, Duration::from_millis(100));
    assert_eq!(s.resource[0], ("service.name".into(), "pay".into()));
    assert!(s.resource.contains(&("faas.name".into(), "api".into())));
    // The traces endpoint is taken as it is, and the service name wins.
    let s = Settings::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/custom",
        ),
        ("OTEL_SERVICE_NAME", "orders"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(s.endpoint, "http://127.0.0.1:4318/custom");
    assert_eq!(s.resource, vec![("service.name".into(), "orders".into())]);
}

#[test]
fn bad_settings_are_refused_with_the_variable_named() {
    let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    for (vars, says) in [
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
            "not an http(s) URL",
        ),
        (
            vec![on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "http/json",
        ),
        (
            vec![on, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
        (
            vec![on, ("OTEL_BSP_SCHEDULE_DELAY", "-1")],
            "OTEL_BSP_SCHEDULE_DELAY",
        ),
    ] {
        let e = Settings::from_env(&env(&vars)).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn spans_are_encoded_as_otlp_json() {
    struct Keep(std::sync::Mutex<Vec<failover_core::trace::Span>>);
    #[async_trait::async_trait]
    impl Tracer for Keep {
        fn enabled(&self) -> bool {
            true
        }
        fn record(&self, s: failover_core::trace::Span) {
            self.0.lock().unwrap().push(s);
        }
    }
    let keep = Keep(Default::default());
    let parent = TraceContext::from_headers(
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        Some("k=v"),
    );
    let mut span = Open::start(&keep, parent.as_ref(), "attempt", SpanKind::Client);
    span.attr("failover.attempt", 2u32);
    span.attr("ticket.id", "t");
    span.fail("backend said \"no\"\n");
    span.end(&keep);
    let spans = keep.0.lock().unwrap();
    let resource = vec![("service.name".to_string(), "s".to_string())];
    let json: serde_json::Value =
        serde_json::from_str(&encode::request(&resource, &spans)).unwrap();
    let s = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(s["kind"], 3);
    assert_eq!(s["status"]["code"], 2);
    assert_eq!(s["status"]["message"], "backend said \"no\"\n");
    assert_eq!(s["traceState"], "k=v");
    assert_eq!(s["attributes"][0]["value"]["intValue"], "2");
    assert_eq!(s["attributes"][1]["value"]["stringValue"], "t");
    assert!(
        s["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let resource = &json["resourceSpans"][0]["resource"]["attributes"][0];
    assert_eq!(resource["value"]["stringValue"], "s");
}
