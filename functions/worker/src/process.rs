//! One queue message, start to finish: what the worker does with a delivery.
//!
//! The ticket in the store decides, not the message: a message is only a
//! pointer, so a duplicate, a late redelivery or a second worker all read the
//! same ticket and the compare-and-set lets exactly one of them act. The
//! result is a [`Disposition`] for the message; local mode applies it to the
//! embedded queue, the Lambda handler turns it into `batchItemFailures`.

use std::sync::Arc;
use std::time::Duration;

use failover_core::attempt::{conclude, end_span, exhausted, judge, with_event, Next};
use failover_core::backoff::retry_delay;
use failover_core::breaker::{Admission, HealthGate};
use failover_core::message::QueueMessage;
use failover_core::ports::{Delivery, Priority, StoreError};
use failover_core::ticket::{ErrorKind, IllegalTransition, Status, Ticket, TicketError};
use failover_core::trace::{Open, SpanKind};
use tokio::time::timeout;
use tracing::Instrument;

use crate::sweeper::GRACE;
use crate::Worker;

/// What to do with the message once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing left to do): delete it.
    Ack,
    /// Make it visible again after this delay.
    Retry(Duration),
    /// Send a fresh copy due after this delay, then delete this one: a long
    /// wait that, unlike a visibility change, does not count as a receive
    /// toward the dead-letter limit.
    Requeue(Duration),
    /// It can never be processed.
    DeadLetter(String),
}

/// Short pause when the store is unreachable or a race was lost: look again
/// soon, the ticket will say what is left to do.
const SOON: Duration = Duration::from_secs(1);

/// While the breaker is open, each lane below `critical` comes back this
/// much later than the one above it: the jitter of those deferrals is at
/// most 2 s, so every message of a lane is back before the next lane's.
const LANE_STAGGER: Duration = Duration::from_secs(3);

/// Deferrals at least this long re-send the message instead of hiding it:
/// an outage of hours would otherwise spend a receive per open period and
/// push its backlog into the dead-letter queue.
pub(crate) const REQUEUE_FROM: Duration = Duration::from_secs(60);

fn until(now: i64, at: i64) -> Duration {
    Duration::from_millis((at - now).max(0) as u64)
}

fn store_trouble(e: StoreError) -> Disposition {
    if e != StoreError::Conflict {
        tracing::warn!(error = %e, "store unavailable: message will be retried");
    }
    Disposition::Retry(SOON)
}

impl Worker {
    /// Handles one delivery; never calls the backend for a terminal ticket.
    pub async fn handle(&self, delivery: &Delivery) -> Disposition {
        let msg = match QueueMessage::parse(&delivery.body) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(message_id = %delivery.message_id, error = %e, "poison message");
                return Disposition::DeadLetter(format!("unparseable message: {e}"));
            }
        };
        // Every line logged for this message carries the ticket id.
        let span = tracing::info_span!("ticket", ticket_id = %msg.ticket_id);
        self.handle_ticket(msg, delivery.priority)
            .instrument(span)
            .await
    }

    async fn handle_ticket(&self, msg: QueueMessage, priority: Priority) -> Disposition {
        let ticket = match self.deps.tickets.get(&msg.ticket_id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                // A capture that was undone (the client got 503), or a ticket
                // past retention: nothing to do.
                tracing::warn!("no ticket for this message: dropped");
                return Disposition::Ack;
            }
            Err(e) => return store_trouble(e),
        };
        self.advance(ticket, priority).await
    }

    async fn advance(&self, ticket: Ticket, priority: Priority) -> Disposition {
        let now = self.deps.clock.now_ms();
        if ticket.status.is_terminal() {
            return self.notify(ticket).await;
        }
        if ticket.status == Status::Processing && !ticket.lease_expired(now) && !ticket.is_parked()
        {
            // Another worker holds it (even past its expiry, it may be
            // calling the backend now): come back when its lease ends.
            let at = ticket.lease_until.unwrap_or(now);
            return Disposition::Retry(until(now, at) + Duration::from_millis(100));
        }
        if now >= ticket.expires_at {
            let error = TicketError {
                kind: ErrorKind::Expired,
                message: "the ticket expired before it could be processed".into(),
            };
            return self
                .finish(&ticket, now, |t| t.fail(now, error, None))
                .await;
        }
        if self.deps.routes.by_name(&ticket.request.route).is_none() {
            // The route was removed since the ticket was taken: no backend
            // to call, now or later. Say so at once rather than retry.
            let error = TicketError {
                kind: ErrorKind::Unroutable,
                message: format!(
                    "the route {:?} is no longer configured",
                    ticket.request.route
                ),
            };
            return self
                .finish(&ticket, now, |t| t.fail(now, error, None))
                .await;
        }
        // A parked ticket (see `Ticket::park`) whose message does come was
        // accepted after all: it runs now, whatever its recorded schedule.
        let scheduled = ticket.next_attempt_at.filter(|at| *at > now);
        if let (Status::Queued, Some(at), false) = (ticket.status, scheduled, ticket.is_parked()) {
            return Disposition::Retry(until(now, at));
        }
        if ticket.attempts >= self.policy.max_attempts {
            // The last attempt's worker died before it could record anything.
            return self.finish(&ticket, now, |t| exhausted(t, now, None)).await;
        }
        if let Some(opens) = self.policy.lanes.opens_at(ticket.request.lane, now) {
            // Its lane is outside its window: nothing is claimed until the
            // window opens (hours, perhaps: re-sent, not hidden).
            tracing::debug!(lane = ticket.request.lane.as_str(), "outside its window");
            self.outcome("scheduled", &ticket);
            return self.postpone(&ticket, now, until(now, opens), true).await;
        }
        // While the backend is known to be down, do not burn an attempt:
        // come back when the next probe is due (with jitter, so a backlog
        // does not return all at once). A worker may be that probe, so
        // recovery does not wait for API traffic.
        let group = self.deps.routes.group_of(&ticket.request.route);
        let gate = self.deps.health.gate(group).clone();
        let admission = gate.admit().await;
        match admission {
            Admission::Open { retry_after } => {
                let jitter = retry_delay(1, retry_after.min(Duration::from_secs(2)), SOON);
                // Lower lanes come back later, by more than the jitter, so
                // that the higher ones are back first at recovery (and then
                // hold the lower ones back while they drain).
                let lane = self
                    .policy
                    .lanes
                    .served_as(priority.lane, priority.since_ms, now);
                let behind = LANE_STAGGER * u32::from(lane.rank());
                tracing::debug!(?retry_after, "breaker open: deferring");
                self.outcome("deferred", &ticket);
                let delay = retry_after + behind + jitter;
                return self.postpone(&ticket, now, delay, false).await;
            }
            Admission::Shed => {
                // The fleet is at SYNC_MAX_INFLIGHT: background work yields
                // to the requests someone is waiting for.
                self.outcome("deferred", &ticket);
                return self
                    .postpone(&ticket, now, SOON + retry_delay(1, SOON, SOON), false)
                    .await;
            }
            Admission::Sync | Admission::Probe => {}
        }
        if let Some(waiting) = self.higher_backlog(priority, now).await {
            // A higher lane is not done: this one waits (re-sent, so no
            // receive counts against it), its admission given back.
            gate.release(admission).await;
            tracing::debug!(waiting, "a higher lane has work outstanding: held back");
            self.outcome("held", &ticket);
            let hold = self.hold_for(waiting);
            return self
                .postpone(&ticket, now, hold + retry_delay(1, hold, SOON), true)
                .await;
        }
        // Pace the backlog so a recovering backend is not flooded; a probe
        // is not paced: it is one call, and recovery waits on it.
        if admission == Admission::Sync {
            if let Err(delay) = self.pace(now, gate.as_ref()).await {
                self.outcome("paced", &ticket);
                return self.postpone(&ticket, now, delay, false).await;
            }
        }
        if self.stopping() {
            // Shutting down: another run (or process) makes this call.
            gate.release(admission).await;
            return Disposition::Retry(SOON);
        }
        let now = self.deps.clock.now_ms();
        if let Some(opens) = self.policy.lanes.opens_at(ticket.request.lane, now) {
            // The window closed while this waited for its drain slot.
            gate.release(admission).await;
            self.outcome("scheduled", &ticket);
            return self.postpone(&ticket, now, until(now, opens), true).await;
        }
        self.attempt(ticket, now, &gate, admission).await
    }

    /// Waits for this attempt's drain slot, or says how long to defer the
    /// message instead. Waiting in hand costs no receive (each counts toward
    /// the dead-letter limit); up to a third of the lease keeps it ours.
    async fn pace(&self, now: i64, gate: &dyn HealthGate) -> Result<(), Duration> {
        let closed_for = gate.closed_for().await;
        match self.drain.reserve(now, closed_for, self.lease() / 3) {
            Ok(wait) if wait.is_zero() => Ok(()),
            Ok(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Err(wait) => Err(wait + retry_delay(1, wait, SOON)),
        }
    }

    /// Defers the message without spending an attempt (`resend`: by a fresh
    /// copy, which burns no receive, whatever the delay). A long deferral is
    /// written to the ticket too (a conditional write, skipped while the
    /// ticket's recorded due time is recent), so that the sweeper, which
    /// re-enqueues tickets long past due, does not take an outage's backlog
    /// for lost messages and double it.
    async fn postpone(
        &self,
        ticket: &Ticket,
        now: i64,
        delay: Duration,
        resend: bool,
    ) -> Disposition {
        let until = now + delay.as_millis() as i64;
        let recorded = ticket.due_at().unwrap_or(now);
        // A ticket no worker has touched yet is marked, whatever the delay:
        // until then the sweeper treats it as a capture that may have failed.
        if !ticket.delivered || until - recorded > GRACE.as_millis() as i64 / 2 {
            if let Ok(next) = ticket.postpone(now, until) {
                if let Err(e) = self
                    .deps
                    .tickets
                    .update(&next, ticket.status, ticket.version)
                    .await
                {
                    tracing::debug!(error = %e, "could not record the deferral");
                }
            }
        }
        match resend || delay >= REQUEUE_FROM {
            true => Disposition::Requeue(delay),
            false => Disposition::Retry(delay),
        }
    }

    async fn attempt(
        &self,
        ticket: Ticket,
        now: i64,
        gate: &Arc<dyn HealthGate>,
        admission: Admission,
    ) -> Disposition {
        let lease = self.lease();
        let claim = match ticket.claim(now, now + lease.as_millis() as i64) {
            Ok(claimed) => self
                .deps
                .tickets
                .update(&claimed, ticket.status, ticket.version)
                .await
                .map(|()| claimed),
            Err(_) => Err(StoreError::Conflict),
        };
        let claimed = match claim {
            Ok(claimed) => claimed,
            Err(e) => {
                // Lost the race (or the store): a probe slot goes back now.
                gate.release(admission).await;
                return store_trouble(e);
            }
        };
        tracing::info!(attempt = claimed.attempts, "calling the backend");
        let req = &claimed.request;
        let span = self.attempt_span(&ticket, &claimed);
        let started = tokio::time::Instant::now();
        let call = failover_core::route::call(
            self.deps.backend.as_ref(),
            &self.deps.routes,
            &claimed.id,
            req,
            Some(span.context()),
        );
        let judged = judge(timeout(self.policy.worker_deadline, call).await.ok());
        let latency = started.elapsed();
        end_span(span, &judged, self.deps.tracer.as_ref());
        let now = self.deps.clock.now_ms();
        gate.record(admission, judged.health, latency).await;
        if !judged.answered() {
            tracing::warn!(attempt = claimed.attempts, problem = %judged.problem, "attempt failed");
        }
        let probe = admission == Admission::Probe;
        match conclude(&claimed, now, &judged, &self.policy, probe) {
            Ok(Next::Done(next)) => self.write_terminal(&claimed, next).await,
            Ok(Next::Retry { ticket, delay }) => {
                match self
                    .deps
                    .tickets
                    .update(&ticket, claimed.status, claimed.version)
                    .await
                {
                    Ok(()) => {
                        self.outcome("retried", &ticket);
                        Disposition::Retry(delay)
                    }
                    Err(e) => store_trouble(e),
                }
            }
            Err(_) => Disposition::Retry(SOON),
        }
    }

    /// The spans of an attempt, under the ticket's capture span: the wait
    /// since the ticket was taken (or last touched: the previous attempt,
    /// a deferral), then the attempt itself, still open.
    fn attempt_span(&self, before: &Ticket, claimed: &Ticket) -> Open {
        let tracer = self.deps.tracer.as_ref();
        let capture = claimed.request.trace.as_ref();
        let since_ms = match before.attempts {
            0 => before.created_at,
            _ => before.updated_at,
        };
        let mut wait = Open::start(tracer, capture, "queue wait", SpanKind::Internal)
            .started_at(since_ms.max(0) as u64 * 1_000_000);
        wait.attr("ticket.id", claimed.id);
        wait.attr("failover.lane", claimed.request.lane.as_str());
        wait.end(tracer);
        let mut span = Open::start(tracer, capture, "attempt", SpanKind::Client);
        span.attr("ticket.id", claimed.id);
        span.attr("failover.attempt", claimed.attempts);
        span
    }

    fn outcome(&self, outcome: &'static str, ticket: &Ticket) {
        let lane = ticket.request.lane.as_str();
        self.deps
            .metrics
            .record(failover_core::metrics::Metric::WorkerOutcome { outcome, lane });
    }

    /// A terminal transition, then the notifications.
    async fn finish(
        &self,
        from: &Ticket,
        now: i64,
        to: impl FnOnce(&Ticket) -> Result<Ticket, IllegalTransition>,
    ) -> Disposition {
        match to(from) {
            Ok(next) => self.write_terminal(from, with_event(next, now)).await,
            Err(_) => Disposition::Retry(SOON),
        }
    }

    async fn write_terminal(&self, from: &Ticket, next: Ticket) -> Disposition {
        if let Err(e) = self
            .deps
            .tickets
            .update(&next, from.status, from.version)
            .await
        {
            return store_trouble(e);
        }
        tracing::info!(status = next.status.as_str(), "ticket finished");
        let outcome = next.error.as_ref().map_or("succeeded", |e| e.kind.as_str());
        self.outcome(outcome, &next);
        self.notify(next).await
    }
}
