//! OTLP's JSON encoding of spans (`ExportTraceServiceRequest`): ids in
//! hex, 64-bit numbers as strings, enums as numbers.

use failover_core::trace::{Span, Value};
use serde_json::{json, Value as Json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(v: &Value) -> Json {
    match v {
        Value::Str(s) => json!({ "stringValue": s }),
        Value::Int(n) => json!({ "intValue": n.to_string() }),
        Value::Bool(b) => json!({ "boolValue": b }),
    }
}

fn span(s: &Span) -> Json {
    let attributes: Vec<Json> = s
        .attributes
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": value(v) }))
        .collect();
    let status = match &s.error {
        Some(message) => json!({ "code": 2, "message": message }),
        None => json!({ "code": 0 }),
    };
    let mut out = json!({
        "traceId": hex(&s.context.trace_id),
        "spanId": hex(&s.context.span_id),
        "name": s.name,
        "kind": s.kind as u8,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": attributes,
        "status": status,
        "flags": u32::from(s.context.flags),
    });
    if let Some(parent) = &s.parent {
        out["parentSpanId"] = json!(hex(parent));
    }
    if let Some(state) = &s.context.state {
        out["traceState"] = json!(state);
    }
    out
}

/// One export request for `spans`, under one resource.
pub(super) fn request(resource: &[(String, String)], spans: &[Span]) -> Json {
    let resource: Vec<Json> = resource
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": { "stringValue": v } }))
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": resource },
            "scopeSpans": [{
                "scope": { "name": "failover-gateway", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    })
}
