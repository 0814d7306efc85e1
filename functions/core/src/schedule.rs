//! When a notification that failed is tried again (`NOTIFY_RETRY_SCHEDULE`).
//!
//! A receiver that is down for an afternoon must still hear of the outcome,
//! so retries spread over a day, like the webhook services receivers know
//! (Stripe, Svix): the first attempt at once, then after 5 s, 5 min, 30 min,
//! 2 h, 5 h, 10 h and 10 h. Attempts beyond the list (`WEBHOOK_MAX_ATTEMPTS`
//! above 8) repeat its last delay; fewer stop early.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The delays between attempts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySchedule(Vec<Duration>);

impl Default for NotifySchedule {
    fn default() -> Self {
        let (s, m, h) = (1, 60, 3600);
        Self(
            [5 * s, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .map(Duration::from_secs)
                .to_vec(),
        )
    }
}

impl NotifySchedule {
    /// The wait before the next attempt, after `attempts` (>= 1) failed.
    pub fn after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.0.len() - 1);
        self.0[i]
    }
}

/// Longest single delay: a day.
const LONGEST: Duration = Duration::from_secs(24 * 3600);

impl FromStr for NotifySchedule {
    type Err = String;

    /// A comma-separated list of delays with units: `5s,5m,30m,2h,500ms`.
    fn from_str(s: &str) -> Result<Self, String> {
        let delays = s
            .split(',')
            .map(|d| {
                let d = d.trim();
                let split = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
                let (n, unit) = d.split_at(split);
                let n: u64 = n
                    .parse()
                    .map_err(|_| format!("{d:?} is not a number with a unit"))?;
                let delay = match unit {
                    "ms" => Duration::from_millis(n),
                    "s" => Duration::from_secs(n),
                    "m" => Duration::from_secs(n * 60),
                    "h" => Duration::from_secs(n * 3600),
                    _ => return Err(format!("{d:?}: the unit is ms, s, m or h")),
                };
                match delay.is_zero() || delay > LONGEST {
                    true => Err(format!("{d:?}: each delay is above 0 and at most 24h")),
                    false => Ok(delay),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(delays))
    }
}

impl fmt::Display for NotifySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|d| match d.as_millis() {
                ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
                ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
                ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
                ms => format!("{ms}ms"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spreads_eight_attempts_over_a_day() {
        let s = NotifySchedule::default();
        assert_eq!(s.to_string(), "5s,5m,30m,2h,5h,10h,10h");
        assert_eq!(s.after(1), Duration::from_secs(5));
        assert_eq!(s.after(7), Duration::from_secs(36_000));
        assert_eq!(s.after(20), Duration::from_secs(36_000), "the last repeats");
        assert_eq!("5s,5m,30m,2h,5h,10h,10h".parse::<NotifySchedule>(), Ok(s));
    }

    #[test]
    fn bad_schedules_say_why() {
        assert_eq!(
            "250ms, 1s".parse::<NotifySchedule>().unwrap().to_string(),
            "250ms,1s"
        );
        for bad in ["", "5", "5x", "0s", "25h", "5s,,1m", "-1s"] {
            assert!(bad.parse::<NotifySchedule>().is_err(), "{bad}");
        }
    }
}
