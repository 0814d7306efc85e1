//! Traces across the queue in AWS mode: the api and the worker function,
//! each exporting to an OTLP receiver at the end of its invocation (the
//! schedule is ten minutes, so only the per-invocation flush can send),
//! make one trace; SNS subscribers get the trace as a message attribute.

use std::time::Duration;

use failover_tests::mock_backend::Behaviour;
use failover_tests::otlp::OtlpReceiver;

use crate::e2e::{receive_on, succeeded_subscriber};
use crate::stack::{body, failures, Stack};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_over_request_is_one_trace_across_the_functions_and_the_topic() {
    let otlp = OtlpReceiver::start().await;
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_string()),
    ];
    let s = Stack::start_with(&vars, &vars).await;
    let subscriber = succeeded_subscriber(&s).await;
    s.backend.push(Behaviour::status(503, "{}"));
    let traceparent = format!("00-{TRACE}-b7ad6b7169203331-01");
    let resp = s
        .post(
            &[
                ("traceparent", &traceparent),
                ("callback-url", &s.hooks.url),
            ],
            r#"{"amount": 8}"#,
        )
        .await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    // Sent when the api's invocation ended.
    let api = ["POST /requests", "sync attempt", "capture"];
    let spans = otlp
        .wait_for(Duration::from_secs(5), |s| s.len() >= api.len())
        .await;
    let mut names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["POST /requests", "capture", "sync attempt"]);
    let capture = spans.iter().find(|s| s.name == "capture").unwrap().clone();
    let server = spans.iter().find(|s| s.name == "POST /requests").unwrap();
    assert_eq!(server.parent.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(capture.parent.as_ref(), Some(&server.span_id));

    let messages = s.receive().await;
    let batch = s.work(&messages).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    let worker = ["queue wait", "attempt", "webhook", "topic"];
    let spans = otlp
        .wait_for(Duration::from_secs(5), |s| {
            s.len() >= api.len() + worker.len()
        })
        .await;
    assert_eq!(spans.len(), api.len() + worker.len(), "{spans:#?}");
    for s in &spans {
        assert_eq!(s.trace_id, TRACE, "{s:?}");
        assert_eq!(s.attr("ticket.id").as_deref(), Some(id.as_str()));
    }
    for name in worker {
        let span = spans.iter().find(|s| s.name == name).expect(name);
        assert_eq!(span.parent.as_ref(), Some(&capture.span_id), "{span:?}");
    }
    // The subscriber continues the same trace from the topic's span.
    let topic = spans.iter().find(|s| s.name == "topic").unwrap();
    let published = receive_on(&s, &subscriber, 5).await;
    assert_eq!(published.len(), 1);
    let attrs = published[0].message_attributes().unwrap();
    assert_eq!(
        attrs["traceparent"].string_value(),
        Some(format!("00-{TRACE}-{}-01", topic.span_id).as_str())
    );
    let hook = &s.hooks.deliveries()[0];
    let webhook = spans.iter().find(|s| s.name == "webhook").unwrap();
    assert_eq!(
        hook.headers["traceparent"].to_str().unwrap(),
        format!("00-{TRACE}-{}-01", webhook.span_id)
    );
}
