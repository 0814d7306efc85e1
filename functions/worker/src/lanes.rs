//! The worker's side of the lanes (`failover_core::lane`): a lane outside
//! its window waits for it, and a lane waits while a higher one has work.
//!
//! The queue orders what it hands out (local mode's SQLite queue by served
//! lane and due time), but SQS cannot: on AWS each lane has its own queue,
//! each polled by its own event source mapping, so the worker holds a
//! message back while a lane above the one it is served as has messages
//! outstanding, by the counts every instance reads from the queues
//! (refreshed each second). Held back means re-sent with a delay, which,
//! unlike a visibility change, burns no receive toward the dead-letter
//! queue; the delay is about how long the higher lanes take to drain at
//! `DRAIN_MAX_RPS`, so a message is held back a few times at most.

use std::time::Duration;

use failover_core::lane::Lane;
use failover_core::ports::{LaneStats, Priority};

use crate::Worker;

/// How long the lanes' counts are trusted.
const BACKLOG_TTL_MS: i64 = 1000;

/// The longest a message is held back for a higher lane at once.
const HOLD_AT_MOST: Duration = Duration::from_secs(15 * 60);

impl Worker {
    /// Messages outstanding (ready, in hand or waiting out a delay) in lanes
    /// above the one `priority` is served as now, if any (`None` also when
    /// the queue cannot be read: then nothing is held back). Outstanding,
    /// not only ready: after an outage the higher lanes' messages come back
    /// over a few seconds, and a lower lane must not slip in between. Ageing
    /// bounds the wait (a higher lane's message in a long retry backoff
    /// holds a lower one back at most `LANE_AGEING_S` per lane).
    pub(crate) async fn higher_backlog(&self, priority: Priority, now: i64) -> Option<u64> {
        let served = self
            .policy
            .lanes
            .served_as(priority.lane, priority.since_ms, now);
        if served == Lane::Critical {
            return None;
        }
        let lanes = self.lane_stats(now).await?;
        let waiting: u64 = lanes
            .iter()
            .filter(|l| l.lane < served)
            .map(|l| l.visible + l.in_flight)
            .sum();
        (waiting > 0).then_some(waiting)
    }

    /// How long to hold a message back behind `waiting` messages.
    pub(crate) fn hold_for(&self, waiting: u64) -> Duration {
        let rate = f64::from(self.policy.drain_max_rps.max(1));
        Duration::from_secs_f64(waiting as f64 / rate).clamp(Duration::from_secs(1), HOLD_AT_MOST)
    }

    async fn lane_stats(&self, now: i64) -> Option<Vec<LaneStats>> {
        let cached = {
            let held = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
            held.as_ref()
                .filter(|(at, _)| now - at < BACKLOG_TTL_MS)
                .map(|(_, lanes)| lanes.clone())
        };
        if cached.is_some() {
            return cached;
        }
        match self.deps.queue.stats().await {
            Ok(stats) => {
                let mut held = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
                *held = Some((now, stats.lanes.clone()));
                Some(stats.lanes)
            }
            Err(e) => {
                tracing::debug!(error = %e, "queue counts unreadable: no lane held back");
                None
            }
        }
    }
}
