//! `GET /tickets/{id}` (with `?wait=N` long polling) and its `/result`.
//!
//! Long polling reads the store every 100 ms rather than waiting on an
//! in-process signal: the worker that changes the ticket may be another
//! process (or another Lambda instance), and the store is what they share.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use failover_core::ticket::{Ticket, TicketId};
use failover_core::view::TicketView;

use crate::problem::ApiError;
use crate::AppState;

/// Longest `?wait=` we hold a connection for.
pub const MAX_WAIT_S: u64 = 20;
const POLL_EVERY: Duration = Duration::from_millis(100);

fn parse_id(raw: &str) -> Result<TicketId, ApiError> {
    raw.parse()
        .map_err(|e: failover_core::ticket::BadTicketId| ApiError::BadParameter(e.to_string()))
}

async fn load(state: &AppState, id: &TicketId) -> Result<Ticket, ApiError> {
    state
        .engine
        .deps()
        .tickets
        .get(id)
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
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let wait = parse_wait(&query)?;
    let mut ticket = load(&state, &id).await?;
    let until = tokio::time::Instant::now() + wait;
    let first = ticket.status;
    while !ticket.status.is_terminal()
        && ticket.status == first
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(POLL_EVERY).await;
        ticket = load(&state, &id).await?;
    }
    let mut resp = Json(TicketView::from(&ticket)).into_response();
    if !ticket.status.is_terminal() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
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
    match result
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        Some(ct) => resp.headers_mut().insert(header::CONTENT_TYPE, ct),
        None => resp.headers_mut().remove(header::CONTENT_TYPE),
    };
    Ok(resp)
}
