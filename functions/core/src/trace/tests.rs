use super::*;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_well_formed_traceparent_is_read_and_written_back_the_same() {
    let c = TraceContext::from_headers(Some(TP), Some("congo=t61rcWkgMzE")).unwrap();
    assert_eq!(c.traceparent(), TP);
    assert!(c.sampled());
    assert_eq!(c.state.as_deref(), Some("congo=t61rcWkgMzE"));
    let child = c.child();
    assert_eq!(child.trace_id, c.trace_id);
    assert_ne!(child.span_id, c.span_id);
    assert_eq!(child.state, c.state);
}

#[test]
fn malformed_traceparents_are_ignored_with_their_state() {
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    ] {
        assert_eq!(
            TraceContext::from_headers(Some(bad), Some("a=b")),
            None,
            "{bad}"
        );
    }
    // A later version is read for its first fields.
    let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-next";
    let c = TraceContext::from_headers(Some(future), None).unwrap();
    assert!(!c.sampled());
}

#[test]
fn a_hostile_tracestate_is_dropped_not_kept() {
    let long = "a=".to_string() + &"x".repeat(TRACESTATE_MAX);
    for bad in [long.as_str(), "a=b\nc=d", "a=é"] {
        let c = TraceContext::from_headers(Some(TP), Some(bad)).unwrap();
        assert_eq!(c.state, None, "{bad:?}");
    }
}

#[test]
fn the_context_round_trips_through_a_ticket() {
    let c = TraceContext::from_headers(Some(TP), Some("k=v")).unwrap();
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"traceparent":"{TP}","tracestate":"k=v"}}"#)
    );
    assert_eq!(serde_json::from_str::<TraceContext>(&json).unwrap(), c);
    assert!(serde_json::from_str::<TraceContext>(r#"{"traceparent":"nope"}"#).is_err());
}

#[test]
fn nothing_is_recorded_without_a_tracer_or_when_unsampled() {
    struct Count(std::sync::Mutex<Vec<Span>>);
    #[async_trait::async_trait]
    impl Tracer for Count {
        fn enabled(&self) -> bool {
            true
        }
        fn record(&self, s: Span) {
            self.0.lock().unwrap().push(s);
        }
    }
    let count = Count(Default::default());
    let unsampled = TraceContext {
        flags: 0,
        ..TraceContext::root()
    };
    Open::start(&count, Some(&unsampled), "x", SpanKind::Internal).end(&count);
    Open::start(&NoTracer, None, "x", SpanKind::Internal).end(&count);
    assert!(count.0.lock().unwrap().is_empty());
    let parent = TraceContext::root();
    let mut s = Open::start(&count, Some(&parent), "x", SpanKind::Client);
    s.attr("n", 1u32);
    s.fail("no");
    let id = s.context().span_id;
    s.end(&count);
    let spans = count.0.lock().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].parent, Some(parent.span_id));
    assert_eq!(spans[0].context.span_id, id);
    assert_eq!(spans[0].context.trace_id, parent.trace_id);
    assert_eq!(spans[0].error.as_deref(), Some("no"));
    assert!(spans[0].end_ns >= spans[0].start_ns);
}
