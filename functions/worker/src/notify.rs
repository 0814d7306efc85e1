//! Completion notifications: the topic and the signed webhook.
//!
//! The terminal event is built once, at the terminal transition, and stored
//! on the ticket, so every retry sends the same bytes under the same
//! `webhook-id` (receivers deduplicate on it). The queue message stays alive
//! until both channels are done: a crash between the terminal write and the
//! notification only delays it, and a retry never calls the backend again
//! because the ticket is already terminal. Each attempt is recorded on the
//! ticket (`notifications`).
//!
//! A failed delivery is tried again on `NOTIFY_RETRY_SCHEDULE` (5 s up to
//! 10 h apart, about a day in all), each channel on its own clock, up to
//! `WEBHOOK_MAX_ATTEMPTS`. A channel that runs out is *exhausted*: shown on
//! the ticket (`delivery`), logged as an error and counted
//! (`NotificationExhausted`, which an alarm watches).

use std::time::Duration;

use failover_core::attempt::pending_event;
use failover_core::metrics::Metric;
use failover_core::ports::TopicEvent;
use failover_core::ticket::{Channel, NotificationAttempt, PendingEvent, Ticket};
use failover_core::trace::{Open, SpanKind};
use failover_core::view::event_message;
use failover_core::webhook::signed_headers;

use crate::process::{Disposition, REQUEUE_FROM};
use crate::Worker;

impl Worker {
    fn attempts_on(t: &Ticket, channel: Channel) -> u32 {
        t.notifications
            .iter()
            .filter(|n| n.channel == channel)
            .count() as u32
    }

    /// Delivers what is due; acknowledges once nothing is left, and
    /// otherwise brings the message back when the next attempt is due
    /// (`NOTIFY_RETRY_SCHEDULE`).
    pub(crate) async fn notify(&self, ticket: Ticket) -> Disposition {
        let now = self.deps.clock.now_ms();
        let mut event = match &ticket.event {
            Some(e) => e.clone(),
            None => pending_event(&ticket, now),
        };
        let mut current = ticket;
        if !event.sns_done && event.next_sns_at <= now {
            let n = Self::attempts_on(&current, Channel::Sns) + 1;
            let mut span = self.notify_span(&current, "topic", SpanKind::Producer, n);
            let topic = TopicEvent {
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                status: current.status.as_str().to_string(),
                body: event_message(&event.payload, event.answer_elided, &current),
                traceparent: Some(span.context().traceparent()),
                notice: Some(self.policy.notices.render(&current)),
            };
            let error = self.notifiers.topic.publish(&topic).await.err();
            let error = error.map(|e| e.to_string());
            if let Some(e) = &error {
                span.fail(e.clone());
            }
            span.end(self.deps.tracer.as_ref());
            match self.next_try(Channel::Sns, n, now, error.is_none()) {
                Some(at) => event.next_sns_at = at,
                None => event.sns_done = true,
            }
            let attempt = NotificationAttempt {
                channel: Channel::Sns,
                attempt: n,
                at: now,
                delivered: error.is_none(),
                status_code: None,
                error,
            };
            match self.save(&current, now, attempt, event.clone()).await {
                Some(saved) => current = saved,
                None => return Disposition::Retry(Duration::from_secs(1)),
            }
        }
        if !event.webhook_done && event.next_webhook_at <= now {
            let n = Self::attempts_on(&current, Channel::Webhook) + 1;
            let (status_code, error) = self.post_webhook(&current, &event, now, n).await;
            match self.next_try(Channel::Webhook, n, now, error.is_none()) {
                Some(at) => event.next_webhook_at = at,
                None => event.webhook_done = true,
            }
            let attempt = NotificationAttempt {
                channel: Channel::Webhook,
                attempt: n,
                at: now,
                delivered: error.is_none(),
                status_code,
                error,
            };
            if self
                .save(&current, now, attempt, event.clone())
                .await
                .is_none()
            {
                return Disposition::Retry(Duration::from_secs(1));
            }
        }
        match event.next_due() {
            None => Disposition::Ack,
            Some(at) => {
                let wait = Duration::from_millis((at - now).max(0) as u64);
                // A long wait re-sends the message rather than hiding it, so
                // that a day of retries spends no receives; the sweeper
                // brings back any ticket whose message is lost meanwhile.
                match wait >= REQUEUE_FROM {
                    true => Disposition::Requeue(wait),
                    false => Disposition::Retry(wait),
                }
            }
        }
    }

    /// After attempt `n` on `channel`: when to try again, or `None` when it
    /// is done (delivered, or out of attempts: exhausted, and said so).
    fn next_try(&self, channel: Channel, n: u32, now: i64, delivered: bool) -> Option<i64> {
        if delivered {
            return None;
        }
        if n >= self.policy.webhook_max_attempts {
            let name = channel.as_str();
            tracing::error!(
                channel = name,
                attempts = n,
                "notification exhausted: giving up"
            );
            self.deps
                .metrics
                .record(Metric::NotificationExhausted { channel: name });
            return None;
        }
        tracing::warn!(
            channel = channel.as_str(),
            attempt = n,
            "notification failed"
        );
        Some(now + self.policy.notify_schedule.after(n).as_millis() as i64)
    }

    /// A delivery's span, under the ticket's capture span.
    fn notify_span(&self, t: &Ticket, name: &'static str, kind: SpanKind, n: u32) -> Open {
        let tracer = self.deps.tracer.as_ref();
        let mut span = Open::start(tracer, t.request.trace.as_ref(), name, kind);
        span.attr("ticket.id", t.id);
        span.attr("failover.attempt", n);
        span
    }

    async fn post_webhook(
        &self,
        t: &Ticket,
        event: &PendingEvent,
        now: i64,
        n: u32,
    ) -> (Option<u16>, Option<String>) {
        let Some(url) = t.request.callback_url.as_deref() else {
            return (None, None);
        };
        let Some(secret) = self.policy.webhook_secret.as_ref() else {
            return (None, Some("no WEBHOOK_SECRET configured".into()));
        };
        let mut span = self.notify_span(t, "webhook", SpanKind::Client, n);
        let message = event_message(&event.payload, event.answer_elided, t);
        let mut headers = signed_headers(secret, &event.event_id, now / 1000, &message);
        headers.traceparent = Some(span.context().traceparent());
        let sent = self
            .notifiers
            .webhooks
            .post(url, &headers, &message, self.policy.webhook_timeout)
            .await;
        let result = match sent {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("receiver answered {code}"))),
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(code) = result.0 {
            span.attr("http.response.status_code", code);
        }
        if let Some(e) = &result.1 {
            span.fail(e.clone());
        }
        span.end(self.deps.tracer.as_ref());
        result
    }

    /// Records one attempt; `None` if the ticket could not be written (the
    /// message comes back and the attempt is made again).
    async fn save(
        &self,
        current: &Ticket,
        now: i64,
        attempt: NotificationAttempt,
        event: PendingEvent,
    ) -> Option<Ticket> {
        let next = current.with_notification(now, attempt, event);
        match self
            .deps
            .tickets
            .update(&next, current.status, current.version)
            .await
        {
            Ok(()) => Some(next),
            Err(e) => {
                tracing::warn!(error = %e, "could not record the notification attempt");
                None
            }
        }
    }
}
