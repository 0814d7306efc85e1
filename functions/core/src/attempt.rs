//! How one backend call ended, judged in one place for the ticket and for
//! the breaker.
//!
//! Three callers end a backend call: the sync path, the worker, and (local
//! mode) the sync call kept running after the client's 202. They must agree
//! on what a 5xx, a 429 or a late answer means, or a request could succeed
//! on one path and be retried on another: [`judge`] classifies the call,
//! [`conclude`] turns a claimed ticket into its next state.

use std::time::Duration;

use crate::backoff::retry_delay;
use crate::breaker::CallOutcome;
use crate::config::Policy;
use crate::ports::{BackendError, BackendResponse};
use crate::ticket::{
    BackendResult, ErrorKind, IllegalTransition, PendingEvent, Ticket, TicketError,
};
use crate::trace::{Open, Tracer};
use crate::view::stored_event;

/// A finished call, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// How the breaker counts it.
    pub health: CallOutcome,
    /// What the backend answered, if it answered at all.
    pub response: Option<BackendResponse>,
    /// Why it failed, for logs and the ticket (empty when answered).
    pub problem: String,
}

impl Judged {
    /// A 2xx or 4xx: the request has its answer (a 4xx is a definitive no).
    pub fn answered(&self) -> bool {
        self.health == CallOutcome::Answered
    }
}

/// `None` means the deadline passed first.
pub fn judge(outcome: Option<Result<BackendResponse, BackendError>>) -> Judged {
    let (health, response, problem) = match outcome {
        None => (CallOutcome::Timeout, None, "deadline passed".to_string()),
        Some(Err(e)) => (CallOutcome::Error, None, e.0),
        Some(Ok(r)) if r.status >= 500 || r.status == 429 => {
            let problem = format!("backend answered {}", r.status);
            (CallOutcome::Error, Some(r), problem)
        }
        Some(Ok(r)) => (CallOutcome::Answered, Some(r), String::new()),
    };
    Judged {
        health,
        response,
        problem,
    }
}

/// Ends a backend call's span with what the call came to.
pub fn end_span(mut span: Open, judged: &Judged, tracer: &dyn Tracer) {
    if let Some(r) = &judged.response {
        span.attr("http.response.status_code", r.status);
    }
    if !judged.answered() {
        span.fail(judged.problem.clone());
    }
    span.end(tracer);
}

/// The answer as the ticket keeps it.
fn to_result(r: &BackendResponse) -> BackendResult {
    BackendResult {
        status_code: r.status,
        body: r.body.clone(),
        content_type: r.content_type.clone(),
        headers: r.headers.clone(),
    }
}

/// What a claimed ticket becomes after its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Terminal, with its event built: notify.
    Done(Ticket),
    /// Queued again; the next attempt is due after `delay`.
    Retry { ticket: Ticket, delay: Duration },
}

/// The next state of `claimed` after a call judged `j`. A failed probe
/// tested the backend, not this request: it spends none of the ticket's
/// attempts (else an outage of hours, probed by workers, would exhaust the
/// backlog) and comes back soon, when the reopened breaker next allows.
pub fn conclude(
    claimed: &Ticket,
    now: i64,
    j: &Judged,
    policy: &Policy,
    probe: bool,
) -> Result<Next, IllegalTransition> {
    let last = j.response.as_ref().map(to_result);
    let done = |t: Ticket| Next::Done(with_event(t, now));
    match (&j.response, j.answered()) {
        (Some(r), true) if r.status >= 400 => {
            let error = TicketError {
                kind: ErrorKind::Rejected,
                message: format!("the backend rejected the request ({})", r.status),
            };
            claimed.fail(now, error, last).map(done)
        }
        (Some(r), true) => claimed.succeed(now, to_result(r)).map(done),
        _ if !probe && claimed.attempts >= policy.max_attempts => {
            exhausted(claimed, now, last).map(done)
        }
        _ => {
            let delay = match probe {
                true => Duration::from_secs(1),
                false => retry_delay(claimed.attempts, policy.retry_base, policy.retry_max),
            };
            let mut ticket = claimed.retry_at(now, now + delay.as_millis() as i64, last)?;
            ticket.attempts -= u32::from(probe);
            Ok(Next::Retry { ticket, delay })
        }
    }
}

/// `failed/exhausted`: every attempt it was allowed has failed.
pub fn exhausted(
    t: &Ticket,
    now: i64,
    last: Option<BackendResult>,
) -> Result<Ticket, IllegalTransition> {
    let error = TicketError {
        kind: ErrorKind::Exhausted,
        message: format!("{} attempts failed", t.attempts),
    };
    t.fail(now, error, last)
}

/// A terminal ticket with its event, built once so that every retry of a
/// notification sends the same bytes under the same `webhook-id`.
pub fn with_event(mut t: Ticket, now: i64) -> Ticket {
    t.event = Some(pending_event(&t, now));
    t
}

pub fn pending_event(t: &Ticket, now: i64) -> PendingEvent {
    let (event_type, payload, answer_elided) = stored_event(t, now);
    let id = t.id.to_string().replace('-', "");
    PendingEvent {
        // A run after an operator's retry is a new outcome: a new id, or
        // receivers would take it for a duplicate of the first.
        event_id: match t.runs {
            0 => format!("evt_{id}_{}", t.status.as_str()),
            run => format!("evt_{id}_{}_r{run}", t.status.as_str()),
        },
        event_type,
        payload,
        answer_elided,
        webhook_done: t.request.callback_url.is_none(),
        sns_done: false,
        next_webhook_at: now,
        next_sns_at: now,
    }
}
