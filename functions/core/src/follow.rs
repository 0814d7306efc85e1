//! A sync call that outlives its client's wait (local mode).
//!
//! When the deadline or the client's `Prefer: wait` passes, dropping the
//! call would make the worker call the backend again later: twice the load
//! on a backend exactly when it is slow. Instead the engine captures the
//! ticket as already in flight (its first attempt, leased for
//! [`Policy::worker_lease`], so a worker that gets the message waits) and
//! [`follow`] lets the call run up to `WORKER_DEADLINE_MS`. Its answer
//! completes the ticket with the usual compare-and-set, as a worker's
//! would ([`crate::attempt::conclude`]), and a fresh message brings a
//! worker to notify now rather than when the lease ends.
//!
//! If this process dies meanwhile, nothing is lost: the lease runs out and
//! the worker claims the ticket (the backend sees the same
//! `Idempotency-Key`). On Lambda the process freezes after the response, so
//! nothing is followed there.
//!
//! For the breaker, a call that missed the policy deadline was a timeout of
//! the sync path, whatever its late answer (the engine records that at the
//! deadline). A call the client cut earlier is judged here, by how it
//! really ends: within the policy deadline by its outcome, past it as a
//! timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{timeout_at, Instant};

use crate::attempt::{conclude, end_span, judge, Next};
use crate::breaker::{Admission, CallOutcome, HealthGate};
use crate::config::Policy;
use crate::engine::Deps;
use crate::message::QueueMessage;
use crate::ports::{BackendError, BackendResponse};
use crate::ticket::{CapturedRequest, Ticket, TicketId};
use crate::trace::{Open, TraceContext, Tracer};

/// A backend call that can outlive the request that started it: polled
/// where it was started (no task, no thread hop, for the common call that
/// answers in time), then by the follower's task. Dropping it cancels the
/// call.
pub(crate) struct Call(Pin<Box<dyn Future<Output = CallResult> + Send>>);

type CallResult = Result<BackendResponse, BackendError>;

impl Call {
    /// Calls the backend in the span `trace`.
    pub(crate) fn start(
        deps: &Deps,
        req: &CapturedRequest,
        ticket_id: TicketId,
        trace: TraceContext,
    ) -> Self {
        let (backend, routes, req) = (deps.backend.clone(), deps.routes.clone(), req.clone());
        Self(Box::pin(async move {
            crate::route::call(backend.as_ref(), &routes, &ticket_id, &req, Some(&trace)).await
        }))
    }
}

impl Future for Call {
    type Output = CallResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// A call the client stopped waiting for, with what the breaker needs.
pub(crate) struct Followed {
    pub call: Call,
    /// The breaker of its route's group.
    pub gate: Arc<dyn HealthGate>,
    /// Its `SYNC_MAX_INFLIGHT` slot: it is still a backend call in flight.
    pub permit: OwnedSemaphorePermit,
    pub admission: Admission,
    pub started: Instant,
    /// The policy deadline, when the client cut the call before it (the
    /// breaker has not heard of the call yet).
    pub judge_by: Option<Duration>,
    /// The sync attempt's span: it ends with the call.
    pub span: Open,
}

impl Followed {
    /// Cancels the call; its span ends as cut off.
    pub(crate) fn cancel(self, tracer: &dyn Tracer) {
        let Followed { mut span, .. } = self;
        span.fail("deadline passed: the call was cancelled");
        span.end(tracer);
    }
}

/// Runs `f` to its end and completes `ticket` (captured in flight) from it.
pub(crate) async fn follow(deps: Deps, policy: Arc<Policy>, ticket: Ticket, f: Followed) {
    let Followed {
        mut call,
        gate,
        permit,
        admission,
        started,
        judge_by,
        span,
    } = f;
    let mut judged = None;
    if let Some(judge_by) = judge_by {
        let health = &gate;
        match timeout_at(started + judge_by, &mut call).await {
            Ok(result) => {
                let j = judge(Some(result));
                health.record(admission, j.health, started.elapsed()).await;
                judged = Some(j);
            }
            Err(_) => {
                health
                    .record(admission, CallOutcome::Timeout, judge_by)
                    .await
            }
        }
    }
    let judged = match judged {
        Some(j) => j,
        None => judge(
            timeout_at(started + policy.worker_deadline, &mut call)
                .await
                .ok(),
        ),
    };
    drop((call, permit));
    end_span(span, &judged, deps.tracer.as_ref());
    let now = deps.clock.now_ms();
    let next = match conclude(&ticket, now, &judged, &policy, false) {
        Ok(Next::Done(t)) => t,
        Ok(Next::Retry { ticket, .. }) => ticket,
        Err(_) => return,
    };
    let id = ticket.id;
    if let Err(e) = deps
        .tickets
        .update(&next, ticket.status, ticket.version)
        .await
    {
        // A worker moved it (or the store is down): it takes over when the
        // lease ends, as if this process had died.
        tracing::warn!(ticket_id = %id, error = %e, "could not record the followed call");
        return;
    }
    tracing::info!(ticket_id = %id, status = next.status.as_str(), "followed call recorded");
    let body = QueueMessage::new(id).to_body();
    let priority = crate::ports::Priority {
        lane: next.request.lane,
        since_ms: next.created_at,
    };
    if let Err(e) = deps.queue.send(&body, priority, Duration::ZERO).await {
        // The captured message still comes back when the lease ends.
        tracing::warn!(ticket_id = %id, error = %e, "could not hurry the worker");
    }
}
