//! Every routed request (`POST /requests` without a routes file): validate
//! the headers and the body, then hand the method, path, query, headers and
//! bytes to the engine, which finds the route (or answers 404, 405 or 415).
//!
//! Every check happens before anything is stored, so a rejected request
//! never reaches the backend, the store or the queue.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use failover_core::callback;
use failover_core::engine::{Answer, Submission};
use failover_core::idempotency::valid_key;
use serde_json::json;

use crate::problem::ApiError;
use crate::{AppState, Caller, DeadlineCap};

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const CALLBACK_URL: &str = "callback-url";
const X_FAILOVER_MODE: HeaderName = HeaderName::from_static("x-failover-mode");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadHeader(format!("{name} must appear once")));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::BadHeader(format!("{name} must be visible ASCII")))
}

/// `application/json` or any `application/*+json`, parameters allowed.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// RFC 7240 preferences we honour; unknown ones are ignored as the RFC says.
fn parse_prefer(headers: &HeaderMap) -> Result<(bool, Option<Duration>), ApiError> {
    let (mut respond_async, mut wait) = (false, None);
    for value in headers.get_all(header::HeaderName::from_static("prefer")) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadHeader("Prefer must be visible ASCII".into()))?;
        for pref in text.split(',') {
            let token = pref.split(';').next().unwrap_or("").trim();
            let (name, val) = match token.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (token, None),
            };
            match name.to_ascii_lowercase().as_str() {
                "respond-async" => respond_async = true,
                "wait" => {
                    let secs: u64 = val.and_then(|v| v.parse().ok()).ok_or_else(|| {
                        ApiError::BadHeader("Prefer: wait=N needs N in whole seconds".into())
                    })?;
                    wait = Some(Duration::from_secs(secs));
                }
                _ => {}
            }
        }
    }
    Ok((respond_async, wait))
}

/// A key in its caller's own space: the caller's fingerprint, then the key.
fn scoped(caller: &Caller, key: &str) -> String {
    format!("{}/{key}", caller.fingerprint())
}

pub async fn submit(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    cap: Option<Extension<DeadlineCap>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let policy = state.engine.policy();
    let request_id = header_str(&headers, "x-request-id")?
        .unwrap_or_default()
        .to_string();
    let idempotency_key = match header_str(&headers, IDEMPOTENCY_KEY)? {
        Some(k) if valid_key(k) => Some(match &caller {
            Some(Extension(who)) => scoped(who, k),
            None => k.to_string(),
        }),
        Some(_) => {
            return Err(ApiError::BadHeader(
                "Idempotency-Key must be 1-255 visible ASCII characters".into(),
            ))
        }
        None => None,
    };
    let callback_url = match header_str(&headers, CALLBACK_URL)? {
        None => None,
        Some(_) if !state.signs_webhooks => {
            return Err(ApiError::BadHeader(
                "Callback-Url is not available: this deployment has no WEBHOOK_SECRET".into(),
            ))
        }
        Some(raw) => Some(
            callback::validate(raw, state.callback_rules)
                .map_err(|e| ApiError::BadHeader(e.to_string()))?
                .to_string(),
        ),
    };
    let (respond_async, wait) = parse_prefer(&headers)?;
    let content_type = header_str(&headers, "content-type")?.unwrap_or("");
    let limit = policy.max_body_bytes;
    let declared = header_str(&headers, "content-length")?.and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?;
    if is_json(content_type) && failover_core::route::has_body(method.as_str(), &bytes) {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return Err(ApiError::MalformedJson(format!(
                "the body is not JSON: {e}"
            )));
        }
    }
    // The route decides which of these reach the backend; only those the
    // engine reads are copied.
    let engine = &state.engine;
    let forwardable = headers
        .iter()
        .filter(|(name, _)| engine.reads_header(name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let submission = Submission {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: forwardable,
        body: bytes.to_vec(),
        content_type: content_type.to_string(),
        request_id,
        idempotency_key,
        callback_url,
        respond_async,
        wait,
        deadline_cap: cap.map(|Extension(DeadlineCap(d))| d),
        owner: caller.map(|Extension(c)| c.fingerprint()),
    };
    let done = state.engine.submit(submission).await?;
    let mut resp = match done.answer {
        Answer::Sync {
            status,
            body,
            content_type,
            headers: passed,
            ..
        } => {
            let code = StatusCode::from_u16(status).map_err(|_| ApiError::BadGateway(status))?;
            let mut r = (code, body).into_response();
            crate::pass_on(&mut r, &passed);
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r.headers_mut()
                .insert(X_FAILOVER_MODE, HeaderValue::from_static("sync"));
            r
        }
        Answer::Accepted {
            ticket_id,
            reason,
            retry_after_s,
        } => {
            let mut status = "queued";
            if done.replayed {
                if let Ok(Some(t)) = state.engine.ticket(&ticket_id).await {
                    status = t.status.as_str();
                }
            }
            let url = format!("/tickets/{ticket_id}");
            let body = json!({
                "ticket_id": ticket_id.to_string(),
                "status": status,
                "reason": reason.as_str(),
                "status_url": url,
            });
            let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
            let h = r.headers_mut();
            h.insert(X_FAILOVER_MODE, HeaderValue::from_static("async"));
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            if let Ok(v) = HeaderValue::from_str(&url) {
                h.insert(header::LOCATION, v);
            }
            let events = state.events_base.as_deref().unwrap_or("");
            let link = format!("<{events}{url}/events>; rel=\"monitor\"");
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.insert(header::LINK, v);
            }
            r
        }
    };
    let h = resp.headers_mut();
    if !done.applied.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&done.applied.join(", ")) {
            h.insert(PREFERENCE_APPLIED, v);
        }
    }
    if done.replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
        assert!(!is_json("application/jsonx"));
    }

    #[test]
    fn preferences() {
        let mut h = HeaderMap::new();
        h.append("prefer", HeaderValue::from_static("respond-async, wait=5"));
        assert_eq!(
            parse_prefer(&h).unwrap(),
            (true, Some(Duration::from_secs(5)))
        );
        let mut h = HeaderMap::new();
        h.append("prefer", HeaderValue::from_static("handling=lenient"));
        assert_eq!(parse_prefer(&h).unwrap(), (false, None));
        let mut h = HeaderMap::new();
        h.append("prefer", HeaderValue::from_static("wait=soon"));
        assert!(parse_prefer(&h).is_err());
    }
}
