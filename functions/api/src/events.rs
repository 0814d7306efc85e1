//! `GET /tickets/{id}/events`: the ticket's status changes as Server-Sent
//! Events, for a client that would rather be told than poll.
//!
//! One event per status the stream sees (`queued`, `processing`,
//! `succeeded`, `failed`), named after it, with the ticket view as data and
//! `<version>.<status>` as its id; the stream ends after the terminal one.
//! `Last-Event-ID` resumes: the status the client last saw is not sent
//! again, and a client that already saw the terminal event gets `204`,
//! which tells an `EventSource` to stop reconnecting. A comment every
//! [`HEARTBEAT`] keeps proxies from closing an idle stream.
//!
//! The stream reads the store when woken by a write of this process
//! (`failover_core::changes`: local mode's worker) and on a timer (100 ms,
//! doubling to 1 s), which is all it has where the writer is elsewhere (the
//! operator's tool, the AWS worker). A status that lasts less than one read
//! (queued, processing and queued again within a second) may be seen only
//! as its last: the terminal status is never missed. Where the host caps
//! the request's time (a Lambda invocation), the stream ends before the
//! cap, and the client reconnects with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use failover_core::changes::Subscription;
use failover_core::ticket::{Status, Ticket, TicketId};
use failover_core::view::TicketView;
use futures_util::stream::{self, Stream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::problem::ApiError;
use crate::tickets::{load, parse_id};
use crate::{AppState, DeadlineCap};

/// How often an idle stream sends a comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Streams one process holds at once; more get 503 and `Retry-After`.
pub const MAX_STREAMS: usize = 10_000;
const FIRST_READ: Duration = Duration::from_millis(100);
const READ_AT_MOST: Duration = Duration::from_secs(1);

/// What a `Last-Event-ID` says: the status the client saw last.
fn parse_last(headers: &HeaderMap) -> Result<Option<Status>, ApiError> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || ApiError::BadParameter("Last-Event-ID must be an id this stream sent".into());
    let text = raw.to_str().map_err(|_| bad())?;
    let (version, status) = text.split_once('.').ok_or_else(bad)?;
    version.parse::<u64>().map_err(|_| bad())?;
    status.parse::<Status>().map(Some).map_err(|_| bad())
}

struct Follow {
    state: AppState,
    id: TicketId,
    /// The ticket read but not yet looked at.
    read: Option<Ticket>,
    last: Option<Status>,
    done: bool,
    every: Duration,
    woken: Option<Subscription>,
    until: Option<Instant>,
    _slot: OwnedSemaphorePermit,
}

impl Follow {
    fn event(&self, t: &Ticket) -> Event {
        let now = self.state.engine.deps().clock.now_ms();
        let opens = self
            .state
            .engine
            .policy()
            .lanes
            .opens_at(t.request.lane, now);
        let view = TicketView::waiting(t, opens);
        let data = serde_json::to_string(&view).unwrap_or_default();
        Event::default()
            .id(format!("{}.{}", t.version, t.status.as_str()))
            .event(t.status.as_str())
            .data(data)
    }

    /// Until the next read is due, a write of this ticket wakes it, or the
    /// time runs out (false).
    async fn wait(&mut self) -> bool {
        let mut next = Instant::now() + self.every;
        if let Some(until) = self.until {
            if Instant::now() >= until {
                return false;
            }
            next = next.min(until);
        }
        match &self.woken {
            Some(sub) => {
                tokio::select! {
                    _ = sub.changed() => {}
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
            None => tokio::time::sleep_until(next).await,
        }
        self.every = (self.every * 2).min(READ_AT_MOST);
        true
    }

    /// The next event, or `None` when the stream ends.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let t = match self.read.take() {
                Some(t) => t,
                None => {
                    if !self.wait().await {
                        return None;
                    }
                    match self.state.engine.ticket(&self.id).await {
                        Ok(Some(t)) => t,
                        // Purged (or expired and gone): nothing more to say.
                        Ok(None) => return None,
                        Err(e) => {
                            tracing::warn!(ticket_id = %self.id, error = %e, "event stream: store unreadable");
                            continue;
                        }
                    }
                }
            };
            self.done = t.status.is_terminal();
            if self.last != Some(t.status) {
                self.last = Some(t.status);
                self.every = FIRST_READ;
                let event = self.event(&t);
                return Some((Ok(event), self));
            }
        }
    }
}

pub async fn ticket_events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    cap: Option<Extension<DeadlineCap>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let last = parse_last(&headers)?;
    let ticket = load(&state, &id).await?;
    if ticket.status.is_terminal() && last == Some(ticket.status) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let slot = state
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams)?;
    // Registered before the first read is used: no write slips between.
    let woken = state.engine.changes().map(|c| c.subscribe(id));
    let heartbeat = state.heartbeat;
    let follow = Follow {
        id,
        read: Some(ticket),
        last,
        done: false,
        every: FIRST_READ,
        woken,
        until: cap.map(|Extension(DeadlineCap(c))| Instant::now() + c),
        _slot: slot,
        state,
    };
    let events = stream::unfold(follow, Follow::next);
    Ok(sse(events, heartbeat))
}

fn sse(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    heartbeat: Duration,
) -> Response {
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response();
    let h = resp.headers_mut();
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    // nginx and similar proxies: do not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_are_the_ones_sent() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("last-event-id", HeaderValue::from_str(v).unwrap());
            parse_last(&h)
        };
        assert_eq!(with("3.processing").unwrap(), Some(Status::Processing));
        assert_eq!(parse_last(&HeaderMap::new()).unwrap(), None);
        for bad in ["processing", "x.queued", "3.done", ""] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }
}
