//! The outside shape of a ticket (`GET /tickets/{id}`, webhook and SNS `data`).
//!
//! Kept apart from [`Ticket`] so that internal fields (version, lease, the
//! captured request) never leak, and so the JSON is written in one place for
//! the API and both notification channels.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::ticket::{BackendResult, Channel, Ticket, TicketError};

pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Serialize)]
pub struct ResultView {
    pub status_code: u16,
    /// JSON bodies are embedded as JSON, other text as a string, and bytes
    /// that are not UTF-8 as base64 (`body_encoding: "base64"`; the exact
    /// bytes are at `/tickets/{id}/result`).
    pub body: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<&'static str>,
    /// In a notification that would be over [`EVENT_MAX_BYTES`] with its
    /// answer: `body` is null and the answer is here (SNS takes 256 KB at
    /// most, and the event is stored on the ticket beside the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_url: Option<String>,
}

/// The largest notification that carries the answer itself, counted as
/// sent (escaped), so that no answer, whatever its bytes, makes an event
/// SNS refuses.
pub const EVENT_MAX_BYTES: usize = 64 * 1024;

impl ResultView {
    fn of(r: &BackendResult) -> Self {
        use base64::Engine as _;
        let (body, body_encoding) = match std::str::from_utf8(&r.body) {
            Ok(text) => (
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
                None,
            ),
            Err(_) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&r.body);
                (Value::String(b64), Some("base64"))
            }
        };
        Self {
            status_code: r.status_code,
            body,
            body_encoding,
            body_url: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NotificationView {
    pub channel: Channel,
    pub attempt: u32,
    pub at: String,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TicketView {
    pub ticket_id: String,
    /// The route it came by (`requests` without a routes file).
    pub route: String,
    pub status: &'static str,
    pub reason: &'static str,
    /// Its priority lane.
    pub lane: &'static str,
    /// While its lane is outside its window: when the window opens (it is
    /// not processed before). Null otherwise.
    pub not_before: Option<String>,
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub result: Option<ResultView>,
    pub error: Option<TicketError>,
    pub notifications: Vec<NotificationView>,
    /// Once terminal: where each notification channel stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryView>,
}

/// `pending` (attempts left), `delivered`, or `exhausted` (every attempt
/// failed: the receiver never heard of the outcome).
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// Absent without a `Callback-Url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<&'static str>,
    pub sns: &'static str,
}

fn delivery(t: &Ticket) -> Option<DeliveryView> {
    let event = t.event.as_ref()?;
    let state = |channel: Channel, done: bool| {
        let last = t.notifications.iter().rev().find(|n| n.channel == channel);
        match (done, last) {
            (false, _) => "pending",
            (true, Some(n)) if !n.delivered => "exhausted",
            (true, _) => "delivered",
        }
    };
    Some(DeliveryView {
        webhook: t
            .request
            .callback_url
            .as_ref()
            .map(|_| state(Channel::Webhook, event.webhook_done)),
        sns: state(Channel::Sns, event.sns_done),
    })
}

impl TicketView {
    /// The view of a ticket that waits for its lane's window until
    /// `opens_ms`, if it does.
    pub fn waiting(t: &Ticket, opens_ms: Option<i64>) -> Self {
        let waits = t.status == crate::ticket::Status::Queued;
        Self {
            not_before: opens_ms.filter(|_| waits).map(rfc3339),
            ..Self::from(t)
        }
    }
}

impl From<&Ticket> for TicketView {
    fn from(t: &Ticket) -> Self {
        Self {
            ticket_id: t.id.to_string(),
            route: t.request.route.clone(),
            status: t.status.as_str(),
            reason: t.reason.as_str(),
            lane: t.request.lane.as_str(),
            not_before: None,
            attempts: t.attempts,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            expires_at: rfc3339(t.expires_at),
            next_attempt_at: t.next_attempt_at.map(rfc3339),
            result: t.result.as_ref().map(ResultView::of),
            error: t.error.clone(),
            notifications: t
                .notifications
                .iter()
                .map(|n| NotificationView {
                    channel: n.channel,
                    attempt: n.attempt,
                    at: rfc3339(n.at),
                    delivered: n.delivered,
                    status_code: n.status_code,
                    error: n.error.clone(),
                })
                .collect(),
            delivery: delivery(t),
        }
    }
}

/// `{"type": "ticket.succeeded"|"ticket.failed", "timestamp", "data"}`,
/// as stored on the ticket: `(type, payload, answer_elided)`. An event that
/// would be over [`EVENT_MAX_BYTES`] with its answer refers to it
/// (`body_url`); one that carries it is stored without it, since the
/// ticket's result holds those bytes already, and [`event_message`] puts it
/// back on every send.
pub fn stored_event(ticket: &Ticket, now_ms: i64) -> (String, String, bool) {
    let event_type = format!("ticket.{}", ticket.status.as_str());
    let event = |data: &TicketView| {
        serde_json::json!({
            "type": event_type,
            "timestamp": rfc3339(now_ms),
            "data": data,
        })
        .to_string()
    };
    let mut data = TicketView::from(ticket);
    let carried = event(&data).len() <= EVENT_MAX_BYTES;
    let Some(r) = data.result.as_mut() else {
        return (event_type.clone(), event(&data), false);
    };
    r.body = Value::Null;
    r.body_encoding = None;
    if !carried {
        r.body_url = Some(format!("/tickets/{}/result", ticket.id));
    }
    let stored = event(&data);
    (event_type, stored, carried)
}

/// The bytes sent for a stored event: its payload, with the ticket's answer
/// put back when it was left out. The same for every retry (the answer of a
/// terminal ticket never changes, and JSON is written in a fixed order).
pub fn event_message(payload: &str, answer_elided: bool, ticket: &Ticket) -> String {
    let (true, Some(result)) = (answer_elided, ticket.result.as_ref()) else {
        return payload.to_string();
    };
    let Ok(mut event) = serde_json::from_str::<Value>(payload) else {
        return payload.to_string();
    };
    let answer = ResultView::of(result);
    if let Some(r) = event
        .get_mut("data")
        .and_then(|d| d.get_mut("result"))
        .and_then(Value::as_object_mut)
    {
        r.insert("body".into(), answer.body);
        if let Some(encoding) = answer.body_encoding {
            r.insert("body_encoding".into(), encoding.into());
        }
    }
    event.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{CapturedRequest, Reason, TicketId};

    fn answered(body: Vec<u8>) -> Ticket {
        let request = CapturedRequest::new("{}", "application/json", "r");
        let result = BackendResult {
            status_code: 200,
            body,
            content_type: Some("text/plain".into()),
            headers: Vec::new(),
        };
        Ticket::new(TicketId::new(), Reason::Timeout, request, 0, 1000)
            .claim(1, 10)
            .and_then(|t| t.succeed(2, result))
            .expect("legal transitions")
    }

    /// What is sent for a ticket's event, from what is stored.
    fn sent(t: &Ticket) -> (String, String) {
        let (_, stored, elided) = stored_event(t, 3);
        (stored.clone(), event_message(&stored, elided, t))
    }

    #[test]
    fn an_event_carries_its_answer_only_while_it_stays_small_once_escaped() {
        let carried = answered(vec![b'a'; 32 * 1024]);
        let (stored, event) = sent(&carried);
        assert!(event.contains(&"a".repeat(32 * 1024)));
        assert!(stored.len() < 4096, "stored without the answer");
        // 20 KiB of control characters are six times larger escaped.
        let escaped = answered(vec![1; 20 * 1024]);
        let (_, event) = sent(&escaped);
        assert!(event.len() < 4096, "{}", event.len());
        let v: Value = serde_json::from_str(&event).expect("JSON");
        assert_eq!(v["data"]["result"]["body"], Value::Null);
        assert!(v["data"]["result"]["body_url"].is_string());
    }

    #[test]
    fn the_answer_put_back_is_the_event_built_with_it() {
        for body in [
            br#"{"paid":true,"n":[1,2.5]}"#.to_vec(),
            vec![0xff, 0x00, 0x80],
        ] {
            let t = answered(body);
            let full = serde_json::json!({
                "type": "ticket.succeeded",
                "timestamp": rfc3339(3),
                "data": TicketView::from(&t),
            })
            .to_string();
            let (_, event) = sent(&t);
            assert_eq!(event, full);
            assert_eq!(sent(&t).1, event, "the same bytes every time");
        }
    }
}
