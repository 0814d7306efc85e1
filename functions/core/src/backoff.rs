//! Exponential backoff with jitter for background retries.
//!
//! "Equal jitter": half of the exponential delay is kept, the other half is
//! random. Retries of many tickets that failed together spread out instead of
//! hitting the recovering backend at the same instant, and no retry comes
//! back immediately (which full jitter allows).

use rand::Rng;
use std::time::Duration;

/// Delay before attempt `attempt + 1`, after `attempt` (>= 1) failed.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let half = capped / 2;
    let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_in_range() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for attempt in 1..30 {
            let d = retry_delay(attempt, base, max);
            let full = (base * 2u32.pow((attempt - 1).min(20))).min(max);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }
}
