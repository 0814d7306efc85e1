//! `GET /tickets/{id}` (with `?wait=N` long polling), its `/result`, and
//! `DELETE /tickets/{id}` (a client cancelling its queued ticket).
//!
//! Long polling reads the store rather than waiting on an in-process
//! signal: the worker that changes the ticket may be another process (or
//! another Lambda instance), and the store is what they share. The reads
//! back off (100 ms, doubling to 1 s), the wait ends before the Lambda
//! invocation does (so the client gets the ticket, not API Gateway's bare
//! 5xx), and at most [`crate::MAX_LONG_POLLS`] wait at once in a process;
//! more get the current state at once.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use failover_core::operator::Refused;
use failover_core::ticket::{Ticket, TicketId};
use failover_core::view::TicketView;

use crate::problem::ApiError;
use crate::{AppState, Caller, DeadlineCap};

/// Longest `?wait=` we hold a connection for.
pub const MAX_WAIT_S: u64 = 20;
const FIRST_POLL: Duration = Duration::from_millis(100);
const POLL_AT_MOST: Duration = Duration::from_secs(1);

pub(crate) fn parse_id(raw: &str) -> Result<TicketId, ApiError> {
    raw.parse()
        .map_err(|e: failover_core::ticket::BadTicketId| ApiError::BadParameter(e.to_string()))
}

pub(crate) async fn load(state: &AppState, id: &TicketId) -> Result<Ticket, ApiError> {
    state
        .engine
        .ticket(id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::TicketNotFound(id.to_string()))
}

fn parse_wait(query: &HashMap<String, String>) -> Result<Duration, ApiError> {
    let Some(raw) = query.get("wait") else {
        return Ok(Duration::ZERO);
    };
    match raw.parse::<u64>() {
        Ok(s) if s <= MAX_WAIT_S => Ok(Duration::from_secs(s)),
        _ => Err(ApiError::BadParameter(format!(
            "wait must be whole seconds from 0 to {MAX_WAIT_S}"
        ))),
    }
}

pub async fn get_ticket(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    cap: Option<Extension<DeadlineCap>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let mut wait = parse_wait(&query)?;
    if let Some(Extension(DeadlineCap(cap))) = cap {
        wait = wait.min(cap);
    }
    let mut ticket = load(&state, &id).await?;
    let first = ticket.status;
    let unchanged = |t: &Ticket| !t.status.is_terminal() && t.status == first;
    let slot = match unchanged(&ticket) && !wait.is_zero() {
        true => state.long_polls.clone().try_acquire_owned().ok(),
        false => None,
    };
    if slot.is_some() {
        let until = tokio::time::Instant::now() + wait;
        let mut every = FIRST_POLL;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(every.min(left)).await;
            every = (every * 2).min(POLL_AT_MOST);
            ticket = load(&state, &id).await?;
            if !unchanged(&ticket) {
                break;
            }
        }
    }
    // A ticket waiting for its lane's window: poll when it opens.
    let now = state.engine.deps().clock.now_ms();
    let lanes = &state.engine.policy().lanes;
    let opens = lanes.opens_at(ticket.request.lane, now);
    let view = TicketView::waiting(&ticket, opens);
    let mut resp = Json(&view).into_response();
    if !ticket.status.is_terminal() {
        let after = match view.not_before {
            Some(_) => opens.map_or(1, |at| ((at - now).max(0) as u64).div_ceil(1000).max(1)),
            None => 1,
        };
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    Ok(resp)
}

pub async fn get_result(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let ticket = load(&state, &id).await?;
    if !ticket.status.is_terminal() {
        return Err(ApiError::ResultNotReady {
            id: id.to_string(),
            status: ticket.status.as_str(),
            retry_after_s: 1,
        });
    }
    let Some(result) = ticket.result else {
        return Err(ApiError::NoBackendAnswer(id.to_string()));
    };
    let code = StatusCode::from_u16(result.status_code)
        .map_err(|_| ApiError::BadGateway(result.status_code))?;
    let mut resp = (code, result.body).into_response();
    crate::pass_on(&mut resp, &result.headers);
    match result
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        Some(ct) => resp.headers_mut().insert(header::CONTENT_TYPE, ct),
        None => resp.headers_mut().remove(header::CONTENT_TYPE),
    };
    Ok(resp)
}

/// `DELETE /tickets/{id}`: a queued ticket ends `failed/cancelled` (202,
/// the ticket), is never sent to the backend, and is notified like any
/// terminal ticket; one being processed or already finished is a 409. A
/// ticket taken by an authenticated caller can only be cancelled by that
/// caller: to anyone else it does not exist (404, as for an unknown id).
pub async fn cancel_ticket(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let ticket = load(&state, &id).await?;
    let who = caller.map(|Extension(c)| c.fingerprint());
    if ticket.request.owner.is_some() && ticket.request.owner != who {
        return Err(ApiError::TicketNotFound(id.to_string()));
    }
    let by = who.map_or("client".to_string(), |w| format!("client:{w}"));
    match state.engine.cancel(&id, &by).await {
        Ok(done) => {
            let view = TicketView::waiting(&done.ticket, None);
            Ok((StatusCode::ACCEPTED, Json(&view)).into_response())
        }
        Err(Refused::NotFound(_)) => Err(ApiError::TicketNotFound(id.to_string())),
        Err(Refused::Store(e)) => Err(ApiError::Unavailable(e.to_string())),
        Err(e @ Refused::Busy(_)) => Err(ApiError::Unavailable(e.to_string())),
        Err(e) => Err(ApiError::Conflict(e.to_string())),
    }
}
