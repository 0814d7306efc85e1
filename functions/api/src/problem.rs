//! RFC 9457 problem details: every error the service itself produces.
//!
//! Each [`ApiError`] variant maps to exactly one status and problem type
//! here, so the status codes of the API are decided in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use failover_core::engine::SubmitError;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadHeader(String),
    #[error("{0}")]
    BadParameter(String),
    #[error("the body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no ticket {0}")]
    TicketNotFound(String),
    #[error("ticket {id} is {status}; its result is not ready")]
    ResultNotReady {
        id: String,
        status: &'static str,
        retry_after_s: u64,
    },
    #[error("ticket {0} failed without any answer from the backend")]
    NoBackendAnswer(String),
    #[error("the backend answered with an invalid status {0}")]
    BadGateway(u16),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(
        "too many event streams are open here; poll the ticket, or retry after Retry-After seconds"
    )]
    TooManyStreams,
}

/// The `detail` of every 503 of a submission: the cause is logged, never sent.
const UNAVAILABLE: &str = "nothing was accepted: the request could not be stored durably \
     right now; retry after Retry-After seconds, with the same Idempotency-Key";

/// The same for a ticket's read or cancel.
const STORE_UNAVAILABLE: &str =
    "the ticket store cannot be reached right now; retry after Retry-After seconds";

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            BadHeader(_) | Submit(SubmitError::BadLane(_)) => {
                (StatusCode::BAD_REQUEST, "bad-header", "Invalid header")
            }
            BadParameter(_) => (
                StatusCode::BAD_REQUEST,
                "bad-parameter",
                "Invalid parameter",
            ),
            Submit(SubmitError::UnsupportedMediaType { .. }) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            TicketNotFound(_) => (
                StatusCode::NOT_FOUND,
                "ticket-not-found",
                "Ticket not found",
            ),
            ResultNotReady { .. } => (
                StatusCode::NOT_FOUND,
                "result-not-ready",
                "Result not ready",
            ),
            NoBackendAnswer(_) => (
                StatusCode::BAD_GATEWAY,
                "no-backend-answer",
                "The backend never answered",
            ),
            BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway"),
            Submit(SubmitError::NotFound) => (StatusCode::NOT_FOUND, "no-route", "Not found"),
            MethodNotAllowed(_) | Submit(SubmitError::MethodNotAllowed { .. }) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Submit(SubmitError::InFlight { .. }) => (
                StatusCode::CONFLICT,
                "idempotency-key-in-use",
                "Request with this Idempotency-Key in progress",
            ),
            Conflict(_) => (
                StatusCode::CONFLICT,
                "ticket-not-cancellable",
                "The ticket cannot be cancelled",
            ),
            Submit(SubmitError::KeyReused) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused with a different body",
            ),
            Submit(SubmitError::SyncOnly { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "backend-unavailable",
                "The backend could not answer now",
            ),
            TooManyStreams => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-streams",
                "Too many event streams",
            ),
            Submit(SubmitError::Unavailable { .. }) | Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unable to accept requests",
            ),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Submit(SubmitError::InFlight { retry_after_s })
            | ApiError::Submit(SubmitError::Unavailable { retry_after_s, .. })
            | ApiError::Submit(SubmitError::SyncOnly { retry_after_s, .. })
            | ApiError::ResultNotReady { retry_after_s, .. } => Some(*retry_after_s),
            ApiError::Unavailable(_) => Some(2),
            ApiError::TooManyStreams => Some(5),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let status_url = match &self {
            ApiError::ResultNotReady { id, .. } => Some(format!("/tickets/{id}")),
            _ => None,
        };
        let detail = match &self {
            // What failed inside (an AWS error names accounts and roles)
            // goes to the log, with the request id of this span.
            ApiError::Submit(SubmitError::Unavailable { .. }) => {
                tracing::error!(cause = %self, "answering 503");
                UNAVAILABLE.to_string()
            }
            ApiError::Unavailable(_) => {
                tracing::error!(cause = %self, "answering 503");
                STORE_UNAVAILABLE.to_string()
            }
            _ => self.to_string(),
        };
        let problem = Problem {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail,
            status_url: status_url.clone(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(url) = status_url.and_then(|u| HeaderValue::from_str(&u).ok()) {
            h.insert(header::LOCATION, url);
        }
        resp
    }
}
