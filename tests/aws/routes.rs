//! AWS mode with a routes file (`ROUTES_FILE`, as the template's layer
//! ships it): the api function routes by method and path to two backends,
//! each breaker group has its own item in the table, and the worker
//! replays a ticket to its route's backend.

use std::time::Duration;

use failover_core::ticket::Status;
use failover_tests::events;
use failover_tests::mock_backend::{Behaviour, MockBackend};
use serde_json::Value;

use crate::stack::{body, failures, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_route_by_the_routes_file() {
    let payments = MockBackend::start(Behaviour::status(201, r#"{"id":"p_1"}"#)).await;
    let orders = MockBackend::start(Behaviour::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.toml");
    std::fs::write(
        &file,
        format!(
            "[[route]]\nname = \"pay\"\nmethod = \"POST\"\npath = \"/payments\"\n\
             backend = \"{}/v1/payments\"\nforward_headers = [\"authorization\"]\n\n\
             [[route]]\nname = \"order\"\nmethod = \"GET\"\npath = \"/orders/{{id}}\"\n\
             backend = \"{}/orders/{{id}}\"\n",
            payments.origin(),
            orders.origin()
        ),
    )
    .unwrap();
    let routes = [
        ("ROUTES_FILE", file.display().to_string()),
        // Counts reach the table soon after each call.
        ("HEALTH_CACHE_MS", "50".to_string()),
    ];
    let s = Stack::start_with(&routes, &routes).await;
    let invoke =
        |method: &str, path: &str, query: &str, headers: &[(&str, &str)], b: Option<&str>| {
            s.api.invoke(
                events::http_api(method, path, query, headers, b),
                Duration::from_secs(10),
            )
        };

    let json = ("content-type", "application/json");
    let auth = ("authorization", "Bearer t");
    let paid = invoke(
        "POST",
        "/payments",
        "",
        &[json, auth, ("cookie", "c=1")],
        Some("{}"),
    )
    .await
    .expect("api answered");
    assert_eq!(paid["statusCode"], 201, "{paid}");
    let c = &payments.calls()[0];
    assert_eq!(
        (c.method.as_str(), c.uri.as_str()),
        ("POST", "/v1/payments")
    );
    assert!(c
        .headers
        .iter()
        .any(|(n, v)| n == "authorization" && v == "Bearer t"));
    assert!(!c.headers.iter().any(|(n, _)| n == "cookie"));

    let late = invoke("GET", "/orders/7", "fields=status", &[], None)
        .await
        .expect("api answered");
    assert_eq!(late["statusCode"], 202, "{late}");
    let id = body(&late)["ticket_id"].as_str().unwrap().to_string();
    let gone = invoke("POST", "/requests", "", &[json], Some("{}"))
        .await
        .expect("api answered");
    assert_eq!(gone["statusCode"], 404, "no /requests with a routes file");

    // The worker replays the order lookup to the orders backend.
    orders.set_default(Behaviour::ok(r#"{"status":"shipped"}"#));
    let batch = s.work(&s.receive().await).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    assert_eq!(s.ticket(&id).await.status, Status::Succeeded);
    // Each group's breaker is its own item, written once its counts are
    // flushed (by the next call of that group after HEALTH_CACHE_MS).
    let ddb = aws_sdk_dynamodb::Client::new(&s.env.sdk);
    let item_of = |group: String| {
        let ddb = ddb.clone();
        let table = s.env.table.clone();
        async move {
            ddb.get_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("H#breaker#{group}")),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
        }
    };
    let mut found = false;
    for _ in 0..100 {
        invoke("POST", "/payments", "", &[json], Some("{}"))
            .await
            .expect("api answered");
        let both =
            item_of(payments.origin()).await.is_some() && item_of(orders.origin()).await.is_some();
        if both {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "each group has its own breaker item");

    let replayed = orders.calls().last().cloned().unwrap();
    assert_eq!(
        (replayed.method.as_str(), replayed.uri.as_str()),
        ("GET", "/orders/7?fields=status")
    );
    let result = invoke("GET", &format!("/tickets/{id}/result"), "", &[], None)
        .await
        .expect("api answered");
    let answer: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["status"], "shipped");
}
