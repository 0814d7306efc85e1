//! Traces across the queue: W3C trace context and the spans the gateway
//! records.
//!
//! A request that fails over is handled twice, minutes apart, by different
//! processes (the API, then a worker, perhaps in another Lambda). To see it
//! as one trace, the context travels with the request: accepted from the
//! client's `traceparent`/`tracestate` (a new trace when absent or
//! malformed), sent on to the backend, kept on the ticket (the capture
//! span's context, [`crate::ticket::CapturedRequest::trace`]), and
//! continued by the worker's attempts and notifications.
//!
//! One trace of a failed-over request:
//!
//! ```text
//! POST /requests (server)            ticket.id, failover.reason
//! ├── sync attempt (client)          traceparent sent to the backend
//! └── capture (producer)             ticket written, message sent
//!     ├── queue wait                 capture (or the last try) to the worker
//!     ├── attempt (client)           one per background attempt
//!     ├── webhook (client)           traceparent sent to the receiver
//!     └── topic (producer)           traceparent as a message attribute
//! ```
//!
//! Spans go to a [`Tracer`] (the OTLP exporter when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else [`NoTracer`], which records
//! nothing: no span is built, only the context is passed on). The context
//! is honoured as the client sent it, including its sampled flag
//! (parent-based sampling); a new trace is sampled.

mod span;

pub use span::{NoTracer, Open, Span, SpanKind, Tracer, Value};

use serde::{Deserialize, Serialize};

/// The longest `tracestate` kept: W3C lets a vendor truncate it, and a
/// ticket must stay small whatever a client sends.
pub const TRACESTATE_MAX: usize = 512;

/// A span's W3C trace context: what `traceparent` (and `tracestate`)
/// carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
    pub state: Option<String>,
}

/// As kept on a ticket: the two headers' text.
#[derive(Serialize, Deserialize)]
struct Stored {
    traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
}

impl TryFrom<Stored> for TraceContext {
    type Error = String;
    fn try_from(s: Stored) -> Result<Self, String> {
        TraceContext::from_headers(Some(&s.traceparent), s.tracestate.as_deref())
            .ok_or_else(|| format!("malformed traceparent {:?}", s.traceparent))
    }
}

impl From<TraceContext> for Stored {
    fn from(c: TraceContext) -> Self {
        Stored {
            traceparent: c.traceparent(),
            tracestate: c.state,
        }
    }
}

fn hex_to<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Lower-case hex only, as W3C requires.
    if s.len() != N * 2
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of `bytes` into `out` (a header per request: no
/// formatting machinery).
fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// A `tracestate` worth passing on: printable ASCII, within the cap.
fn valid_state(s: &str) -> Option<String> {
    let s = s.trim();
    let ok =
        !s.is_empty() && s.len() <= TRACESTATE_MAX && s.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then(|| s.to_string())
}

impl TraceContext {
    /// The context a client sent, if `traceparent` is well formed (W3C
    /// level 1: version `00` exactly; a later version is read for its
    /// first four fields). A malformed one is ignored with its
    /// `tracestate`, as the specification says.
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let tp = traceparent?.trim();
        let version = hex_to::<1>(tp.get(..2)?)?[0];
        if version == 0xff || (version == 0 && tp.len() != 55) || tp.len() < 55 {
            return None;
        }
        if version != 0 && tp.len() > 55 && tp.as_bytes()[55] != b'-' {
            return None;
        }
        let b = tp.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id = hex_to::<16>(&tp[3..35])?;
        let span_id = hex_to::<8>(&tp[36..52])?;
        let flags = hex_to::<1>(&tp[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
            state: tracestate.and_then(valid_state),
        })
    }

    /// The first span of a new trace (sampled).
    pub fn root() -> Self {
        let mut trace_id = [0u8; 16];
        while trace_id == [0; 16] {
            trace_id = rand::random();
        }
        Self {
            trace_id,
            span_id: new_span_id(),
            flags: 1,
            state: None,
        }
    }

    /// A span under this one: same trace, flags and state.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..self.clone()
        }
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// `traceparent` for this span.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        hex(&mut out, &self.trace_id);
        out.push('-');
        hex(&mut out, &self.span_id);
        out.push('-');
        hex(&mut out, &[self.flags]);
        out
    }

    /// The two headers to send on a call made in this span.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![("traceparent".to_string(), self.traceparent())];
        if let Some(state) = &self.state {
            h.push(("tracestate".to_string(), state.clone()));
        }
        h
    }
}

fn new_span_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        id = rand::random();
    }
    id
}

#[cfg(test)]
mod tests;
