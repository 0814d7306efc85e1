//! Traces across the queue: one failed-over request, from the client's
//! `traceparent` through the sync attempt, the capture, the queue and the
//! worker's attempt to the webhook, exported over OTLP/HTTP to a receiver.

use std::collections::HashMap;
use std::time::Duration;

use failover_tests::mock_backend::Behaviour;
use failover_tests::otlp::{OtlpReceiver, ReceivedSpan};
use failover_tests::receiver::Receiver;
use failover_tests::spawn::{spawn_app_traced, test_policy, TestApp};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

async fn traced_app(backend: Behaviour, endpoint: &str) -> TestApp {
    let vars: HashMap<&str, String> = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_string()),
        ("OTEL_SERVICE_NAME", "payments-gateway".to_string()),
    ]);
    let tracer = failover_adapters::otlp::tracer(&|k| vars.get(k).cloned()).unwrap();
    spawn_app_traced(test_policy(), backend, tracer).await
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name:?} span in {spans:#?}");
    found[0]
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    let found = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    found.map(|(_, v)| v.clone())
}

#[tokio::test]
async fn one_failed_over_request_is_one_trace_from_the_client_to_the_webhook() {
    let otlp = OtlpReceiver::start().await;
    let app = traced_app(Behaviour::ok(r#"{"paid":true}"#), &otlp.url).await;
    app.backend.push(Behaviour::status(503, "{}"));
    let hook = Receiver::start().await;
    let resp = app
        .post(r#"{"amount": 5}"#)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=1")
        .header("callback-url", &hook.url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "backend_error");
    let id = body["ticket_id"].as_str().unwrap().to_string();
    app.wait_for(&id, |t| {
        t["notifications"].as_array().is_some_and(|n| {
            n.iter()
                .any(|a| a["channel"] == "webhook" && a["delivered"] == true)
        })
    })
    .await;
    let names = [
        "POST /requests",
        "sync attempt",
        "capture",
        "queue wait",
        "attempt",
        "webhook",
        "topic",
    ];
    let spans = otlp
        .wait_for(Duration::from_secs(10), |s| {
            names.iter().all(|n| s.iter().any(|x| x.name == *n))
        })
        .await;
    assert_eq!(spans.len(), names.len(), "{spans:#?}");
    for s in &spans {
        assert_eq!(s.trace_id, TRACE, "{s:?}");
        assert_eq!(s.attr("ticket.id").as_deref(), Some(id.as_str()), "{s:?}");
        assert_eq!(s.service, "payments-gateway");
        assert!(s.end_ns >= s.start_ns, "{s:?}");
    }
    let server = named(&spans, "POST /requests");
    let sync = named(&spans, "sync attempt");
    let capture = named(&spans, "capture");
    let wait = named(&spans, "queue wait");
    let attempt = named(&spans, "attempt");
    let webhook = named(&spans, "webhook");
    let topic = named(&spans, "topic");

    // Parent and child: the client's span, the request, then the capture
    // under which every later step hangs.
    assert_eq!(server.parent.as_deref(), Some(CLIENT_SPAN));
    for child in [sync, capture] {
        assert_eq!(child.parent.as_ref(), Some(&server.span_id), "{child:?}");
    }
    for child in [wait, attempt, webhook, topic] {
        assert_eq!(child.parent.as_ref(), Some(&capture.span_id), "{child:?}");
    }
    let kinds: Vec<u64> = [server, sync, capture, attempt, webhook, topic]
        .iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds, [2, 3, 4, 3, 3, 4]);
    assert_eq!(sync.status, 2, "the sync attempt failed: {sync:?}");
    assert_eq!(attempt.status, 0);
    assert_eq!(
        server.attr("failover.reason").as_deref(),
        Some("backend_error")
    );
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("202")
    );
    assert_eq!(attempt.attr("failover.attempt").as_deref(), Some("1"));

    // In time: each step after the one before it.
    assert!(server.start_ns <= sync.start_ns && sync.end_ns <= capture.start_ns);
    assert!(capture.end_ns <= server.end_ns);
    assert!(wait.start_ns <= capture.end_ns && wait.end_ns <= attempt.start_ns);
    assert!(capture.end_ns <= attempt.start_ns && attempt.end_ns <= webhook.start_ns);

    // What went out carried the span it was made in.
    let calls = app.backend.calls();
    assert_eq!(calls.len(), 2);
    for (call, span) in calls.iter().zip([sync, attempt]) {
        let sent = format!("00-{TRACE}-{}-01", span.span_id);
        assert_eq!(header(&call.headers, "traceparent"), Some(sent));
        assert_eq!(
            header(&call.headers, "tracestate").as_deref(),
            Some("vendor=1")
        );
    }
    let delivered = hook.deliveries();
    let tp = delivered[0]
        .headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(tp, format!("00-{TRACE}-{}-01", webhook.span_id));
    // The ticket keeps the context, not the client's view of it.
    let t = app.ticket(&id).await;
    assert!(!t.to_string().contains(TRACE), "{t}");
}

#[tokio::test]
async fn a_trace_starts_when_none_or_a_malformed_one_comes_and_an_unsampled_one_is_not_exported() {
    let otlp = OtlpReceiver::start().await;
    let app = traced_app(Behaviour::ok("{}"), &otlp.url).await;
    let send = |tp: Option<&str>| {
        let mut post = app.post("{}");
        if let Some(tp) = tp {
            post = post.header("traceparent", tp);
        }
        async move { assert_eq!(post.send().await.unwrap().status(), 200) }
    };
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    send(Some(unsampled)).await;
    send(None).await;
    send(Some("00-not-a-trace-01")).await;
    let spans = otlp
        .wait_for(Duration::from_secs(10), |s| {
            s.iter().filter(|x| x.name == "POST /requests").count() == 2
        })
        .await;
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "POST /requests")
        .collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    for server in &servers {
        assert_eq!(server.parent, None, "a new trace: {server:?}");
        let sync = spans
            .iter()
            .find(|s| s.name == "sync attempt" && s.trace_id == server.trace_id)
            .expect("its sync attempt");
        assert_eq!(sync.parent.as_ref(), Some(&server.span_id));
    }
    assert_ne!(servers[0].trace_id, servers[1].trace_id);
    // Spans go out in order: the unsampled request's would be here by now.
    assert!(
        spans.iter().all(|s| !s.trace_id.starts_with("1111")),
        "{spans:#?}"
    );
    // Its context still reached the backend, unsampled.
    let calls = app.backend.calls();
    let first = header(&calls[0].headers, "traceparent").unwrap();
    assert!(
        first.starts_with("00-11111111111111111111111111111111-"),
        "{first}"
    );
    assert!(
        first.ends_with("-00") && !first.contains("2222222222222222"),
        "{first}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_costs_the_requests_nothing() {
    // Nothing listens on port 9.
    let app = traced_app(Behaviour::ok("{}"), "http://127.0.0.1:9").await;
    for _ in 0..20 {
        let resp = app.post("{}").send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let id = app.accepted().await;
    assert_eq!(app.wait_terminal(&id).await["status"], "succeeded");
}
