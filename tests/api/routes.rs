//! A routes file in front of two backends: each backend gets exactly the
//! method, path, query, listed headers and bytes its route says, on the
//! sync path and when the worker replays a ticket; unknown paths, methods
//! and media types are problems; the old `POST /requests` is gone.

use failover_tests::mock_backend::{Behaviour, Call, MockBackend};
use failover_tests::spawn::{spawn_app_routed, test_policy, TestApp};
use serde_json::Value;

async fn two_backends() -> (TestApp, MockBackend, MockBackend) {
    let orders = Behaviour::ok(r#"{"status":"shipped"}"#);
    two_backends_with(test_policy(), orders).await
}

async fn two_backends_with(
    policy: failover_core::Policy,
    orders: Behaviour,
) -> (TestApp, MockBackend, MockBackend) {
    let payments = MockBackend::start(Behaviour::status(201, r#"{"id":"p_1"}"#)).await;
    let orders = MockBackend::start(orders).await;
    let routes = format!(
        r#"
[[route]]
name = "create-payment"
method = "POST"
path = "/payments"
backend = "{p}/v1/payments"
forward_headers = ["authorization"]

[[route]]
name = "refund"
method = "POST"
path = "/payments/{{id}}/refunds"
backend = "{p}/v1/payments/{{id}}/refunds"

[[route]]
name = "order-status"
method = "GET"
path = "/orders/{{id}}"
backend = "{o}/orders/{{id}}"
"#,
        p = payments.origin(),
        o = orders.origin()
    );
    let app = spawn_app_routed(policy, &routes).await;
    (app, payments, orders)
}

/// `POST path` with a JSON body and these headers.
async fn post(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut ask = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        ask = ask.header(*name, *value);
    }
    ask.send().await.unwrap()
}

fn header<'a>(c: &'a Call, name: &str) -> Option<&'a str> {
    c.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn each_backend_gets_exactly_what_its_route_says() {
    let (app, payments, orders) = two_backends().await;
    let body = r#"{"amount": 12, "note": "caf\u00e9"}"#;
    let sent = [
        ("authorization", "Bearer t"),
        ("cookie", "session=secret"),
        ("x-customer-id", "c_9"),
    ];
    let resp = post(&app, "/payments", &sent, body).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-failover-mode"], "sync");
    let c = &payments.calls()[0];
    assert_eq!(
        (c.method.as_str(), c.uri.as_str()),
        ("POST", "/v1/payments")
    );
    assert_eq!(c.body, body);
    assert_eq!(header(c, "authorization"), Some("Bearer t"));
    assert_eq!(header(c, "content-type"), Some("application/json"));
    assert!(header(c, "idempotency-key").is_some());
    assert_eq!(header(c, "cookie"), None, "unlisted headers stay here");
    assert_eq!(header(c, "x-customer-id"), None);

    let resp = post(&app, "/payments/p_1/refunds?dry=1", &[], "{}").await;
    assert_eq!(resp.status(), 201);
    let c = &payments.calls()[1];
    assert_eq!(c.uri, "/v1/payments/p_1/refunds?dry=1");
    assert_eq!(header(c, "authorization"), None, "not listed on this route");

    let resp = app.get("/orders/42?fields=status").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "shipped");
    let c = &orders.calls()[0];
    assert_eq!(
        (c.method.as_str(), c.uri.as_str()),
        ("GET", "/orders/42?fields=status")
    );
    assert!(c.body.is_empty());
}

#[tokio::test]
async fn the_worker_replays_the_same_request_to_the_same_backend() {
    let (app, payments, _orders) = two_backends().await;
    let body = r#"{"amount": 13}"#;
    let sent = [("authorization", "Bearer t"), ("prefer", "respond-async")];
    let resp = post(&app, "/payments", &sent, body).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["route"], "create-payment", "a ticket shows its route");
    let calls = payments.calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (c.method.as_str(), c.uri.as_str()),
        ("POST", "/v1/payments")
    );
    assert_eq!(c.body, body);
    assert_eq!(header(c, "authorization"), Some("Bearer t"));
    assert_eq!(header(c, "idempotency-key"), Some(id.as_str()));
}

#[tokio::test]
async fn unknown_paths_methods_and_media_types_are_problems() {
    let (app, payments, orders) = two_backends().await;
    let send = |method: reqwest::Method, path: &str, ct: &str| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .header("content-type", ct)
            .body("{}")
            .send()
    };
    let json = "application/json";
    let kind = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let p: Value = r.json().await.unwrap();
        (status, p["type"].as_str().unwrap_or_default().to_string())
    };
    let r = send(reqwest::Method::POST, "/refunds", json).await.unwrap();
    assert_eq!(kind(r).await, (404, "/problems/no-route".into()));
    let r = send(reqwest::Method::POST, "/requests", json)
        .await
        .unwrap();
    assert_eq!(
        kind(r).await,
        (404, "/problems/no-route".into()),
        "the old door"
    );
    let r = send(reqwest::Method::DELETE, "/orders/1", json)
        .await
        .unwrap();
    assert_eq!(kind(r).await, (405, "/problems/method-not-allowed".into()));
    let r = send(reqwest::Method::POST, "/payments", "text/plain")
        .await
        .unwrap();
    assert_eq!(
        kind(r).await,
        (415, "/problems/unsupported-media-type".into())
    );
    assert!(payments.calls().is_empty() && orders.calls().is_empty());
}

/// A hanging orders backend opens its own group's breaker only: order
/// requests then go straight to the queue, payments stay sync.
#[tokio::test]
async fn one_slow_backend_switches_only_its_own_routes_to_async() {
    let policy = failover_core::Policy {
        breaker_min_calls: 3,
        ..test_policy()
    };
    let (app, payments, orders) = two_backends_with(policy, Behaviour::Hang).await;
    for _ in 0..3 {
        let r = app.get("/orders/7").await;
        assert_eq!(r.status(), 202);
        assert_eq!(r.json::<Value>().await.unwrap()["reason"], "timeout");
    }
    let r = app.get("/orders/7").await;
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "circuit_open");
    let h: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(h["mode"], "async", "{h}");
    assert_eq!(h["breakers"][orders.origin()]["state"], "open", "{h}");
    assert_eq!(h["breakers"][payments.origin()]["state"], "closed", "{h}");
    let listed: Vec<(&str, &str)> = h["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["group"].as_str().unwrap()))
        .collect();
    let (pay, ord) = (payments.origin(), orders.origin());
    assert_eq!(
        listed,
        [
            ("create-payment", pay.as_str()),
            ("refund", pay.as_str()),
            ("order-status", ord.as_str())
        ]
    );
    let paid = post(&app, "/payments", &[], "{}").await;
    assert_eq!(paid.status(), 201);
    assert_eq!(paid.headers()["x-failover-mode"], "sync");
}

/// A `sync_only` route never queues: when its backend cannot answer in
/// time it is a 503 with `Retry-After`, even when the client prefers async.
#[tokio::test]
async fn a_sync_only_route_answers_503_instead_of_a_ticket() {
    let slow = MockBackend::start(Behaviour::Hang).await;
    let routes = format!(
        "[[route]]\nname = \"balance\"\nmethod = \"GET\"\npath = \"/balance/{{id}}\"\n\
         backend = \"{}/balance/{{id}}\"\nsync_only = true\n",
        slow.origin()
    );
    let app = spawn_app_routed(test_policy(), &routes).await;
    for prefer in ["", "respond-async"] {
        let r = app
            .client
            .get(format!("{}/balance/1", app.base))
            .header("prefer", prefer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "prefer {prefer:?}");
        assert!(r.headers().contains_key("retry-after"));
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], "/problems/backend-unavailable", "{p}");
    }
    assert_eq!(slow.calls().len(), 2, "each was tried");
    let h: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(h["queue"]["depth"], 0, "nothing was queued: {h}");
}

/// Only the response headers a route lists come back, on the sync answer,
/// an idempotent replay and `/tickets/{id}/result`.
#[tokio::test]
async fn listed_response_headers_come_back_on_every_path() {
    let backend = MockBackend::start(
        Behaviour::ok(r#"{"status":"shipped"}"#)
            .with_header("etag", "\"v1\"")
            .with_header("x-internal", "secret"),
    )
    .await;
    let routes = format!(
        "[[route]]\nname = \"order\"\nmethod = \"GET\"\npath = \"/orders/{{id}}\"\n\
         backend = \"{}/orders/{{id}}\"\nresponse_headers = [\"ETag\"]\n",
        backend.origin()
    );
    let app = spawn_app_routed(test_policy(), &routes).await;
    let get = |prefer: &'static str| {
        app.client
            .get(format!("{}/orders/1", app.base))
            .header("idempotency-key", format!("k-{prefer}"))
            .header("prefer", prefer)
            .send()
    };
    for _ in 0..2 {
        let r = get("").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["etag"], "\"v1\"");
        assert!(!r.headers().contains_key("x-internal"));
    }
    let r = get("respond-async").await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_terminal(&id).await;
    let r = app.get(&format!("/tickets/{id}/result")).await;
    assert_eq!(r.headers()["etag"], "\"v1\"");
    assert!(!r.headers().contains_key("x-internal"));
    assert_eq!(backend.calls().len(), 2, "the replay called nothing");
}

/// A ticket from each route completes through the worker, which calls its
/// route's backend with the same method, path and query.
#[tokio::test]
async fn tickets_from_every_route_complete_with_their_own_method_and_path() {
    let (app, payments, orders) = two_backends().await;
    let asks = [
        (reqwest::Method::POST, "/payments", "/v1/payments"),
        (
            reqwest::Method::POST,
            "/payments/p_9/refunds?dry=1",
            "/v1/payments/p_9/refunds?dry=1",
        ),
        (reqwest::Method::GET, "/orders/9?x=1", "/orders/9?x=1"),
    ];
    for (method, path, seen) in asks {
        let mut ask = app
            .client
            .request(method.clone(), format!("{}{path}", app.base))
            .header("prefer", "respond-async");
        if method == reqwest::Method::POST {
            ask = ask.header("content-type", "application/json").body("{}");
        }
        let r = ask.send().await.unwrap();
        assert_eq!(r.status(), 202, "{path}");
        let id = r.json::<Value>().await.unwrap()["ticket_id"]
            .as_str()
            .unwrap()
            .to_string();
        let t = app.wait_terminal(&id).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        let calls = [payments.calls(), orders.calls()].concat();
        let call = calls
            .iter()
            .find(|c| c.idempotency_key.as_deref() == Some(id.as_str()))
            .expect("the backend was called for it");
        assert_eq!(
            (call.method.as_str(), call.uri.as_str()),
            (method.as_str(), seen)
        );
    }
}

/// A hostile path parameter (`..`, `%2e%2e`, a backslash) cannot walk the
/// backend's path: it matches no route, and nothing reaches a backend.
#[tokio::test]
async fn a_path_parameter_cannot_leave_its_segment() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, payments, orders) = two_backends().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    for path in [
        "/orders/..",
        "/orders/%2e%2e",
        "/orders/.%2E",
        "/orders/a\\b",
    ] {
        // Raw, since an HTTP client would resolve the dots before sending.
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let ask = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        conn.write_all(ask.as_bytes()).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    assert!(payments.calls().is_empty() && orders.calls().is_empty());
}
