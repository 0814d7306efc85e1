//! Bad input: a clear problem+json error, and nothing reaches the backend,
//! the store or the queue.

use failover_core::ports::Queue;
use failover_tests::spawn::{spawn_app, TestApp};
use serde_json::Value;

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().contains_key("x-request-id"));
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(p[field].is_string(), "{field} in {p}");
    }
    p
}

async fn nothing_happened(app: &TestApp) {
    assert!(app.backend.calls().is_empty(), "backend called");
    let s = app.store.stats().await.unwrap();
    assert_eq!(s.visible + s.in_flight, 0, "queued");
    assert!(
        app.store.ticket_ids().await.unwrap().is_empty(),
        "ticket stored"
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in ["{", "not json", "", "{\"a\": 1} trailing"] {
        problem(app.post(body).send().await.unwrap(), 400).await;
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let app = spawn_app().await;
    let url = format!("{}/requests", app.base);
    let plain = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}");
    problem(plain.send().await.unwrap(), 415).await;
    let none = app.client.post(&url).body("{}");
    problem(none.send().await.unwrap(), 415).await;
    nothing_happened(&app).await;
}

#[tokio::test]
async fn too_large_is_413() {
    let app = spawn_app().await;
    let limit = app.policy.max_body_bytes;
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(limit));
    problem(app.post(&big).send().await.unwrap(), 413).await;
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures_stream(big.clone());
    let chunked = app
        .client
        .post(format!("{}/requests", app.base))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream));
    problem(chunked.send().await.unwrap(), 413).await;
    // Exactly at the limit is fine.
    let fits = format!("{{\"pad\": \"{}\"}}", "x".repeat(limit - 11));
    assert_eq!(fits.len(), limit);
    assert_eq!(app.post(&fits).send().await.unwrap().status(), 200);
}

fn futures_stream(
    body: String,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(8192)
        .map(|c| Ok(c.to_vec()))
        .collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn bad_headers_are_400() {
    let app = spawn_app().await;
    let cases: Vec<(&str, String)> = vec![
        ("idempotency-key", "has space".into()),
        ("idempotency-key", "k".repeat(256)),
        ("callback-url", "http://hooks.example.com/x".into()),
        ("callback-url", "https://10.0.0.1/x".into()),
        ("callback-url", "https://169.254.169.254/latest".into()),
        ("callback-url", "https://[fe80::1]/x".into()),
        ("callback-url", "not a url".into()),
        ("prefer", "wait=soon".into()),
    ];
    for (name, value) in cases {
        let resp = app
            .post("{}")
            .header(name, value.as_str())
            .send()
            .await
            .unwrap();
        let p = problem(resp, 400).await;
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{name}: {value}");
    }
    let twice = app
        .post("{}")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b");
    problem(twice.send().await.unwrap(), 400).await;
    nothing_happened(&app).await;
}

#[tokio::test]
async fn ticket_lookups_validate_the_id_and_the_wait() {
    let app = spawn_app().await;
    problem(app.get("/tickets/not-a-ticket").await, 400).await;
    problem(app.get("/tickets/not-a-ticket/result").await, 400).await;
    let unknown = uuid::Uuid::new_v4();
    problem(app.get(&format!("/tickets/{unknown}")).await, 404).await;
    problem(app.get(&format!("/tickets/{unknown}/result")).await, 404).await;
    problem(app.get(&format!("/tickets/{unknown}?wait=21")).await, 400).await;
    problem(app.get(&format!("/tickets/{unknown}?wait=x")).await, 400).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    problem(app.get("/nope").await, 404).await;
    let put = app
        .client
        .put(format!("{}/requests", app.base))
        .send()
        .await
        .unwrap();
    problem(put, 405).await;
}
