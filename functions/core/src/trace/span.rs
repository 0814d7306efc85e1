//! Spans and where they go.
//!
//! [`Open`] is a span in progress. With [`NoTracer`] (no exporter) it holds
//! only its context, which is still passed on to the backend, the ticket
//! and the receivers; nothing else is built, so tracing costs nothing when
//! it is off. A span the client marked unsampled is not recorded either.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::TraceContext;
use crate::ticket::TicketId;

/// OpenTelemetry's span kinds (their numbers are OTLP's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<TicketId> for Value {
    fn from(v: TicketId) -> Self {
        Value::Str(v.to_string())
    }
}

/// A finished span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub context: TraceContext,
    pub parent: Option<[u8; 8]>,
    /// Unix time in nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Set when the span failed: OTLP status ERROR with this message.
    pub error: Option<String>,
}

/// Where finished spans go. `record` must not block: an exporter buffers
/// and sends in the background, dropping spans rather than slowing the
/// request when it falls behind.
#[async_trait]
pub trait Tracer: Send + Sync {
    /// Whether spans are recorded at all.
    fn enabled(&self) -> bool;
    fn record(&self, span: Span);
    /// Sends what is buffered (a Lambda function calls this before its
    /// invocation ends, as the process may then be frozen).
    async fn flush(&self) {}
}

/// No exporter configured: nothing is recorded.
pub struct NoTracer;

#[async_trait]
impl Tracer for NoTracer {
    fn enabled(&self) -> bool {
        false
    }
    fn record(&self, _: Span) {}
}

/// The wall clock in Unix nanoseconds (spans from different processes
/// line up on it).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A span in progress.
#[derive(Debug)]
pub struct Open {
    context: TraceContext,
    /// `None` when not recorded (no tracer, or not sampled).
    span: Option<Span>,
}

impl Open {
    /// A span under `parent`, or the root of a new trace.
    pub fn start(
        tracer: &dyn Tracer,
        parent: Option<&TraceContext>,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
    ) -> Self {
        let context = parent.map_or_else(TraceContext::root, TraceContext::child);
        Self::resume(tracer, context, parent.map(|p| p.span_id), name, kind)
    }

    /// A span whose context was made earlier (kept on a ticket).
    pub fn resume(
        tracer: &dyn Tracer,
        context: TraceContext,
        parent: Option<[u8; 8]>,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
    ) -> Self {
        let span = (tracer.enabled() && context.sampled()).then(|| Span {
            name: name.into(),
            kind,
            context: context.clone(),
            parent,
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::new(),
            error: None,
        });
        Self { context, span }
    }

    /// Moves the start back to `start_ns` (a wait that began elsewhere).
    pub fn started_at(mut self, start_ns: u64) -> Self {
        if let Some(s) = &mut self.span {
            s.start_ns = start_ns.min(s.start_ns);
        }
        self
    }

    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    pub fn attr<V: Into<Value>>(&mut self, key: &'static str, value: V) {
        if let Some(s) = &mut self.span {
            s.attributes.push((key, value.into()));
        }
    }

    pub fn fail(&mut self, message: impl Into<String>) {
        if let Some(s) = &mut self.span {
            s.error = Some(message.into());
        }
    }

    pub fn end(self, tracer: &dyn Tracer) {
        if let Some(mut s) = self.span {
            s.end_ns = now_ns().max(s.start_ns);
            tracer.record(s);
        }
    }
}
