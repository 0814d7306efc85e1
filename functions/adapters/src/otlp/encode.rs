//! OTLP's JSON encoding of spans (`ExportTraceServiceRequest`): ids in
//! hex, 64-bit numbers as strings, enums as numbers. Written straight
//! into one buffer: a batch is encoded on the request path's runtime,
//! and a tree of JSON values per span would cost it an allocation per
//! field.

use std::fmt::Write;

use failover_core::trace::{Span, Value};

/// `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    // A `&str` always serialises.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn hex(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('"');
}

fn key_value(out: &mut String, key: &str, value: &Value) {
    out.push_str("{\"key\":");
    string(out, key);
    out.push_str(",\"value\":");
    match value {
        Value::Str(s) => {
            out.push_str("{\"stringValue\":");
            string(out, s);
            out.push('}');
        }
        Value::Int(n) => {
            let _ = write!(out, "{{\"intValue\":\"{n}\"}}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
    }
    out.push('}');
}

fn span(out: &mut String, s: &Span) {
    out.push_str("{\"traceId\":");
    hex(out, &s.context.trace_id);
    out.push_str(",\"spanId\":");
    hex(out, &s.context.span_id);
    if let Some(parent) = &s.parent {
        out.push_str(",\"parentSpanId\":");
        hex(out, parent);
    }
    if let Some(state) = &s.context.state {
        out.push_str(",\"traceState\":");
        string(out, state);
    }
    out.push_str(",\"name\":");
    string(out, &s.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"flags\":{}",
        s.kind as u8, s.start_ns, s.end_ns, s.context.flags
    );
    out.push_str(",\"attributes\":[");
    for (i, (k, v)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        key_value(out, k, v);
    }
    out.push_str("],\"status\":");
    match &s.error {
        Some(message) => {
            out.push_str("{\"code\":2,\"message\":");
            string(out, message);
            out.push('}');
        }
        None => out.push_str("{\"code\":0}"),
    }
    out.push('}');
}

/// One export request for `spans`, under one resource.
pub(super) fn request(resource: &[(String, String)], spans: &[Span]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 400);
    out.push_str("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    for (i, (k, v)) in resource.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        key_value(&mut out, k, &Value::Str(v.clone()));
    }
    out.push_str("]},\"scopeSpans\":[{\"scope\":{\"name\":\"failover-gateway\",\"version\":");
    string(&mut out, env!("CARGO_PKG_VERSION"));
    out.push_str("},\"spans\":[");
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        span(&mut out, s);
    }
    out.push_str("]}]}]}");
    out
}
