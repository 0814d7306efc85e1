use std::time::Duration;

use super::*;
use crate::config::ForceMode;

const EXAMPLE: &str = r#"
[[route]]
name = "create-payment"
method = "POST"
path = "/payments"
backend = "http://127.0.0.1:9000/v1/payments"
deadline_ms = 2000
forward_headers = ["Authorization", "x-customer-id"]

[[route]]
name = "refund"
method = "POST"
path = "/payments/{id}/refunds"
backend = "http://127.0.0.1:9000/v1/payments/{id}/refunds"

[[route]]
name = "order-status"
method = "get"
path = "/orders/{id}"
backend = "http://127.0.0.1:9100/orders/{id}?source=gw"
deadline_ms = 800
sync_only = true
breaker_group = "crm"
response_headers = ["etag"]
content_types = ["application/json", "Text/Plain"]
force_mode = "sync"
error_rate_threshold = 0.25
"#;

fn table() -> RouteTable {
    RouteTable::parse(EXAMPLE, "routes.toml", &Policy::default()).expect("the example parses")
}

fn found<'a>(t: &'a RouteTable, method: &str, path: &str) -> (&'a str, Vec<(String, String)>) {
    match t.find(method, path) {
        Lookup::Found { route, params } => (route.name.as_str(), params),
        other => panic!("{method} {path}: {other:?}"),
    }
}

#[test]
fn the_example_parses_with_its_overrides_and_groups() {
    let t = table();
    let pay = t.by_name("create-payment").unwrap();
    assert_eq!(pay.policy.sync_deadline, Duration::from_millis(2000));
    assert_eq!(pay.forward_headers, ["authorization", "x-customer-id"]);
    assert_eq!(pay.group, "http://127.0.0.1:9000");
    assert_eq!(pay.content_types, ["application/json"]);
    let refund = t.by_name("refund").unwrap();
    assert_eq!(refund.policy.sync_deadline, Policy::default().sync_deadline);
    assert_eq!(refund.group, pay.group, "one breaker per backend origin");
    let status = t.by_name("order-status").unwrap();
    assert_eq!(status.method, "GET");
    assert!(status.sync_only);
    assert_eq!(status.group, "crm");
    assert_eq!(status.policy.force_mode, ForceMode::Sync);
    assert_eq!(status.policy.error_rate_threshold, 0.25);
    assert!(status.accepts("text/plain; charset=utf-8"));
    assert!(!pay.accepts("text/plain"));
    assert!(pay.accepts("Application/JSON; charset=utf-8"));
    let groups: Vec<&str> = t.groups().iter().map(|(g, _)| *g).collect();
    assert_eq!(groups, ["http://127.0.0.1:9000", "crm"]);
}

#[test]
fn requests_find_their_route_and_its_backend_url() {
    let t = table();
    assert_eq!(found(&t, "POST", "/payments"), ("create-payment", vec![]));
    let (name, params) = found(&t, "POST", "/payments/p%2F1/refunds");
    assert_eq!(name, "refund");
    let refund = t.by_name("refund").unwrap();
    assert_eq!(
        refund.backend_url(&params, Some("dry=1")),
        "http://127.0.0.1:9000/v1/payments/p%2F1/refunds?dry=1"
    );
    let (_, params) = found(&t, "GET", "/orders/42");
    let status = t.by_name("order-status").unwrap();
    assert_eq!(
        status.backend_url(&params, Some("a=b")),
        "http://127.0.0.1:9100/orders/42?source=gw&a=b"
    );
    assert_eq!(
        status.backend_url(&params, None),
        "http://127.0.0.1:9100/orders/42?source=gw"
    );
    assert!(matches!(
        t.find("DELETE", "/orders/42"),
        Lookup::MethodNotAllowed(m) if m == ["GET"]
    ));
    // A parameter never leaves its segment of the backend's path.
    for hostile in [
        "/orders/..",
        "/orders/.",
        "/orders/%2e%2E",
        "/orders/.%2e",
        "/orders/a\\b",
        "/orders/a#b",
    ] {
        assert!(
            matches!(t.find("GET", hostile), Lookup::NotFound),
            "{hostile}"
        );
    }
    assert!(matches!(t.find("GET", "/orders/..a"), Lookup::Found { .. }));
    for missing in ["/orders", "/orders/", "/orders/42/x", "/payment", "/"] {
        assert!(
            matches!(t.find("GET", missing), Lookup::NotFound),
            "{missing}"
        );
    }
}

#[test]
fn without_a_file_the_gateway_is_post_requests() {
    let t = RouteTable::single("http://127.0.0.1:9/b", Arc::new(Policy::default())).unwrap();
    let (name, _) = found(&t, "POST", "/requests");
    assert_eq!(name, DEFAULT_ROUTE);
    let route = t.by_name(DEFAULT_ROUTE).unwrap();
    assert_eq!(route.backend_url(&[], None), "http://127.0.0.1:9/b");
    assert!(RouteTable::single("ftp://x", Arc::new(Policy::default())).is_err());
}

/// One route with `extra` lines, and what its refusal must say.
fn refused(route: &str) -> RouteError {
    RouteTable::parse(route, "r.toml", &Policy::default()).expect_err("refused")
}

const OK_ROUTE: &str = "[[route]]\nname = \"a\"\nmethod = \"POST\"\npath = \"/a\"\nbackend = \"http://127.0.0.1:1/a\"\n";

#[test]
fn every_mistake_stops_start_up_with_the_line_and_the_reason() {
    let with = |extra: &str| format!("{OK_ROUTE}{extra}\n");
    let second = |lines: &str| format!("{OK_ROUTE}\n[[route]]\n{lines}\n");
    let cases: Vec<(String, usize, &str)> = vec![
        ("".into(), 1, "missing field `route`"),
        (with("colour = \"red\""), 6, "unknown field `colour`"),
        (with("deadline_ms = \"fast\""), 6, "invalid type"),
        (OK_ROUTE.replace("POST", "FETCH"), 1, "method \"FETCH\""),
        (OK_ROUTE.replace("\"a\"\nmethod", "\"a b\"\nmethod"), 1, "name \"a b\""),
        (OK_ROUTE.replace("\"/a\"", "\"a\""), 1, "must start with /"),
        (OK_ROUTE.replace("\"/a\"", "\"/a/{x\""), 1, "bad parameter"),
        (OK_ROUTE.replace("\"/a\"", "\"/a b\""), 1, "bad segment"),
        (OK_ROUTE.replace("\"/a\"", "\"/a/{x}/{x}\""), 1, "parameter {x} twice"),
        (OK_ROUTE.replace("\"/a\"", "\"/tickets/{id}/x\""), 1, "shadow the gateway's own /tickets"),
        (OK_ROUTE.replace("\"/a\"", "\"/health\""), 1, "shadow the gateway's own /health"),
        (OK_ROUTE.replace("\"/a\"", "\"/{x}\""), 1, "shadow the gateway's own /health"),
        (OK_ROUTE.replace("\"/a\"", "\"/{x}/{y}\""), 1, "shadow the gateway's own /tickets/_"),
        (OK_ROUTE.replace("http://127.0.0.1:1/a", "not a url"), 1, "backend \"not a url\""),
        (OK_ROUTE.replace("http://", "ftp://"), 1, "must be http or https"),
        (OK_ROUTE.replace("1/a\"", "1/{id}\""), 1, "{id} is not a parameter of the path"),
        (
            OK_ROUTE
                .replace("\"/a\"", "\"/a/{h}\"")
                .replace("127.0.0.1:1", "{h}:1"),
            1,
            "not the host",
        ),
        (with("forward_headers = [\"Idempotency-Key\"]"), 1, "set by the gateway itself"),
        (with("forward_headers = [\"bad header\"]"), 1, "not a header name"),
        (with("response_headers = [\"content-length\"]"), 1, "set by the gateway itself"),
        (with("deadline_ms = 0"), 1, "deadline_ms must be > 0"),
        (with("error_rate_threshold = 1.5"), 1, "between 0 and 1"),
        (with("force_mode = \"maybe\""), 1, "one of auto, async, sync"),
        (with("content_types = []"), 1, "content_types is empty"),
        (with("breaker_group = \"a b\""), 1, "breaker_group"),
        (with("lane = \"urgent\""), 1, "one of critical, normal, bulk"),
        (with(&format!("breaker_group = \"{}\"", "g".repeat(281))), 1, "at most 280"),
        (
            second("name = \"a\"\nmethod = \"GET\"\npath = \"/b\"\nbackend = \"http://127.0.0.1:1/b\""),
            7,
            "already defined on line 1",
        ),
        (
            second("name = \"b\"\nmethod = \"POST\"\npath = \"/{x}/c\"\nbackend = \"http://127.0.0.1:1/b\"")
                .replace("\"/a\"", "\"/a/c\""),
            7,
            "overlaps route \"a\"",
        ),
        (
            second("name = \"b\"\nmethod = \"GET\"\npath = \"/b\"\nbackend = \"http://127.0.0.1:1/b\"\nslow_call_ms = 5")
                .replace("\"/a\"", "\"/a\"\nslow_call_ms = 7"),
            8,
            "slow_call_ms differs from route \"a\"",
        ),
    ];
    for (text, line, reason) in cases {
        let e = refused(&text);
        assert!(
            e.line == line && e.reason.contains(reason) && e.file == "r.toml",
            "{text}\nexpected line {line} with {reason:?}, got {e}"
        );
    }
    // The same path under two methods, or a literal beside a parameter of
    // another length, is no overlap.
    let fine = format!(
        "{OK_ROUTE}\n[[route]]\nname = \"b\"\nmethod = \"GET\"\npath = \"/a\"\nbackend = \"http://127.0.0.1:1/a\"\n\
         \n[[route]]\nname = \"c\"\nmethod = \"POST\"\npath = \"/a/{{x}}\"\nbackend = \"http://127.0.0.1:1/a/{{x}}\"\n"
    );
    assert_eq!(
        RouteTable::parse(&fine, "r.toml", &Policy::default())
            .unwrap()
            .routes()
            .len(),
        3
    );
}
