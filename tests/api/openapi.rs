//! `docs/openapi.json` is checked against the router: every documented
//! operation is routed, every other method on a documented path is 405, and
//! real responses validate against the documented schemas.

use failover_tests::mock_backend::Behaviour;
use failover_tests::spawn::{spawn_app_with, test_policy, TestApp};
use serde_json::{json, Value};

const DOC: &str = include_str!("../../docs/openapi.json");
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("docs/openapi.json is JSON")
}

async fn call(app: &TestApp, method: &str, path: &str) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.client
        .request(m, format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

async fn problem_type(resp: reqwest::Response) -> Option<String> {
    let ct = resp
        .headers()
        .get("content-type")?
        .to_str()
        .ok()?
        .to_string();
    if ct != "application/problem+json" {
        return None;
    }
    let p: Value = resp.json().await.ok()?;
    p["type"].as_str().map(str::to_string)
}

/// A validator for one named schema of the document.
fn schema(name: &str) -> jsonschema::Validator {
    let d = doc();
    let s = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": d["components"],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&s)
        .expect("a valid schema")
}

fn assert_valid(name: &str, value: &Value) {
    let v = schema(name);
    let errors: Vec<String> = v.iter_errors(value).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{name} does not match the document: {errors:?}\n{value}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else() {
    let app = spawn_app_with(test_policy(), Behaviour::ok("{}")).await;
    let d = doc();
    let paths = d["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 5, "the API has five paths");
    for (template, ops) in paths {
        let path = template.replace("{id}", &uuid::Uuid::new_v4().to_string());
        for method in METHODS {
            let documented = ops.get(method.to_lowercase()).is_some();
            let kind = problem_type(call(&app, method, &path).await).await;
            if documented {
                assert!(
                    !matches!(
                        kind.as_deref(),
                        Some("/problems/no-route" | "/problems/method-not-allowed")
                    ),
                    "{method} {template} is documented but not routed"
                );
            } else {
                assert_eq!(
                    kind.as_deref(),
                    Some("/problems/method-not-allowed"),
                    "{method} {template} is routed but not documented"
                );
            }
        }
    }
    let kind = problem_type(call(&app, "GET", "/undocumented").await).await;
    assert_eq!(kind.as_deref(), Some("/problems/no-route"));
}

#[tokio::test]
async fn responses_match_the_documented_schemas() {
    let app = spawn_app_with(test_policy(), Behaviour::status(201, r#"{"id":"p_1"}"#)).await;
    let accepted = app.post_async(r#"{"amount": 1}"#).send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    let body: Value = accepted.json().await.unwrap();
    assert_valid("Accepted", &body);
    let id = body["ticket_id"].as_str().unwrap();
    assert_valid("Ticket", &app.ticket(id).await);
    let done = app
        .wait_for(id, |t| {
            t["notifications"].as_array().is_some_and(|n| !n.is_empty())
        })
        .await;
    assert_valid("Ticket", &done);
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_valid("Health", &health);
    let problem: Value = app.post("{").send().await.unwrap().json().await.unwrap();
    assert_valid("Problem", &problem);
    // The check can fail: a ticket missing a field does not validate.
    let mut broken = done.clone();
    broken.as_object_mut().unwrap().remove("attempts");
    assert!(!schema("Ticket").is_valid(&broken));
}
