//! The worker's drain rate: how fast a backlog goes back to the backend.
//!
//! A backend that has just recovered is at its most fragile, and an outage
//! leaves a backlog of exactly the work that broke it. Each worker instance
//! therefore spaces its background attempts to at most `DRAIN_MAX_RPS` per
//! second, and for `DRAIN_RAMP_S` after the breaker closes it starts at a
//! tenth of that and grows linearly, the way TCP's slow start probes a link.
//! A fleet's bound is this rate times the number of worker instances (the
//! event source mapping's maximum concurrency in AWS mode).
//!
//! Attempts are spaced one interval apart (virtual scheduling, as in GCRA):
//! no burst after an idle period, so the first second after recovery sees
//! the ramp's rate and not a queue's worth of requests.

use std::sync::Mutex;
use std::time::Duration;

use crate::config::Policy;

#[derive(Debug)]
pub struct DrainLimiter {
    max_rps: u32,
    ramp: Duration,
    /// The earliest time (epoch ms, fractional) of the next attempt.
    next_ms: Mutex<f64>,
}

impl DrainLimiter {
    pub fn new(p: &Policy) -> Self {
        Self {
            max_rps: p.drain_max_rps,
            ramp: p.drain_ramp,
            next_ms: Mutex::new(f64::MIN),
        }
    }

    /// Attempts per second allowed `closed_for` after the breaker last
    /// closed (`None`: it has not recovered recently); `None` if unbounded.
    pub fn rate(&self, closed_for: Option<Duration>) -> Option<f64> {
        let full = f64::from(self.max_rps);
        match closed_for {
            _ if self.max_rps == 0 => None,
            Some(d) if d < self.ramp => {
                Some(full * (0.1 + 0.9 * d.as_secs_f64() / self.ramp.as_secs_f64()))
            }
            _ => Some(full),
        }
    }

    /// Reserves the next attempt at `now_ms`: `Ok(wait)` to wait that long
    /// and go, or `Err(wait)` without reserving when the wait would exceed
    /// `max_wait` (the caller defers the message instead of holding it).
    pub fn reserve(
        &self,
        now_ms: i64,
        closed_for: Option<Duration>,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        let Some(rate) = self.rate(closed_for) else {
            return Ok(Duration::ZERO);
        };
        let mut next = self.next_ms.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms as f64;
        let slot = next.max(now);
        let wait = Duration::from_secs_f64((slot - now) / 1000.0);
        if wait > max_wait {
            return Err(wait);
        }
        *next = slot + 1000.0 / rate;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_rps: u32) -> DrainLimiter {
        DrainLimiter::new(&Policy {
            drain_max_rps: max_rps,
            drain_ramp: Duration::from_secs(10),
            ..Policy::default()
        })
    }

    #[test]
    fn the_rate_ramps_from_a_tenth_after_recovery() {
        let l = limiter(100);
        let at = |s: u64| l.rate(Some(Duration::from_secs(s))).map(f64::round);
        assert_eq!(at(0), Some(10.0));
        assert_eq!(at(5), Some(55.0));
        assert_eq!(at(10), Some(100.0));
        assert_eq!(l.rate(None), Some(100.0));
        assert_eq!(limiter(0).rate(Some(Duration::ZERO)), None);
    }

    #[test]
    fn attempts_are_spaced_and_long_waits_are_refused() {
        let l = limiter(10);
        let max = Duration::from_millis(250);
        let steady = None;
        assert_eq!(l.reserve(0, steady, max), Ok(Duration::ZERO));
        assert_eq!(l.reserve(0, steady, max), Ok(Duration::from_millis(100)));
        assert_eq!(l.reserve(0, steady, max), Ok(Duration::from_millis(200)));
        // The fourth would wait 300 ms: refused, and nothing reserved.
        assert_eq!(l.reserve(0, steady, max), Err(Duration::from_millis(300)));
        assert_eq!(l.reserve(250, steady, max), Ok(Duration::from_millis(50)));
        // No burst after idling.
        assert_eq!(l.reserve(10_000, steady, max), Ok(Duration::ZERO));
        assert_eq!(
            l.reserve(10_000, steady, max),
            Ok(Duration::from_millis(100))
        );
    }

    #[test]
    fn unbounded_never_waits() {
        let l = limiter(0);
        for _ in 0..1000 {
            assert_eq!(l.reserve(0, None, Duration::ZERO), Ok(Duration::ZERO));
        }
    }
}
