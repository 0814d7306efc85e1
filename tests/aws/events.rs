//! The `events` function: a ticket's Server-Sent Events streamed through
//! the Lambda Runtime API's streaming mode (as a function URL in
//! `RESPONSE_STREAM` mode invokes it), each event arriving while the
//! invocation still runs; only the event route is served there.

use std::time::Duration;

use failover_lambda::Handler;
use failover_tests::events::http_api;

use crate::stack::{body, failures, function_env, Stack};

const SOON: Duration = Duration::from_secs(10);

/// The body streamed so far, until it contains `needle`.
async fn until_text(
    s: &mut failover_tests::lambda_runtime::Streamed,
    text: &mut String,
    needle: &str,
) -> tokio::time::Instant {
    loop {
        let (at, chunk) = s
            .next(SOON)
            .await
            .unwrap_or_else(|| panic!("ended before {needle:?}: {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains(needle) {
            return at;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_s_events_stream_while_the_invocation_runs() {
    let events_url = "https://events.example.test/";
    let s = Stack::start_with(&[("EVENTS_URL", events_url.into())], &[]).await;
    let events = s
        .functions
        .start(Handler::Events, &function_env(&s.env, &s.backend.url))
        .await;
    let resp = s
        .post(&[("prefer", "respond-async")], r#"{"amount": 5}"#)
        .await;
    assert_eq!(resp["statusCode"], 202, "{resp}");
    let id = body(&resp)["ticket_id"].as_str().unwrap().to_string();
    assert_eq!(
        resp["headers"]["link"],
        format!("<https://events.example.test/tickets/{id}/events>; rel=\"monitor\"").as_str(),
        "an absolute link to the streaming function"
    );

    let get = http_api("GET", &format!("/tickets/{id}/events"), "", &[], None);
    let mut stream = events
        .invoke_streaming(get, Duration::from_secs(60))
        .await
        .unwrap();
    let prelude = stream.prelude(SOON).await;
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(
        prelude["headers"]["content-type"], "text/event-stream",
        "{prelude}"
    );
    let mut text = String::new();
    let queued_at = until_text(&mut stream, &mut text, "event: queued").await;
    // The worker runs only now: `queued` came while the invocation ran.
    let worked_at = tokio::time::Instant::now();
    let batch = s.work(&s.receive().await).await;
    assert!(failures(&batch).is_empty(), "{batch}");
    until_text(&mut stream, &mut text, "event: succeeded").await;
    assert!(queued_at < worked_at);
    assert!(
        stream.next(SOON).await.is_none(),
        "ends after the terminal event: {text}"
    );
    assert!(text.contains(&format!("\"ticket_id\":\"{id}\"")), "{text}");

    // Nothing else is served there: no second way in for requests.
    let post = http_api(
        "POST",
        "/requests",
        "",
        &[("content-type", "application/json")],
        Some("{}"),
    );
    let mut refused = events.invoke_streaming(post, SOON).await.unwrap();
    assert_eq!(refused.prelude(SOON).await["statusCode"], 404);
    assert_eq!(s.backend.calls().len(), 1, "only the worker's call");
}
