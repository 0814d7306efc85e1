//! The latencies behind `/health`'s `p95_ms`: the last few hundred sync
//! and probe calls of this instance, so the percentile costs a small sort on
//! read and nothing on the request path beyond a ring write.

use std::time::Duration;

const KEEP: usize = 512;

#[derive(Debug, Default)]
pub struct Latencies {
    /// (when the call ended, epoch ms; how long it took, ms)
    ring: Vec<(i64, u64)>,
    next: usize,
}

impl Latencies {
    pub fn push(&mut self, at_ms: i64, latency: Duration) {
        let sample = (at_ms, latency.as_millis() as u64);
        if self.ring.len() < KEEP {
            self.ring.push(sample);
        } else {
            self.ring[self.next] = sample;
        }
        self.next = (self.next + 1) % KEEP;
    }

    /// The 95th percentile (nearest rank) of calls that ended at or after
    /// `since_ms`; `None` without any.
    pub fn p95_since(&self, since_ms: i64) -> Option<u64> {
        let mut recent: Vec<u64> = self
            .ring
            .iter()
            .filter(|(at, _)| *at >= since_ms)
            .map(|(_, ms)| *ms)
            .collect();
        if recent.is_empty() {
            return None;
        }
        let rank = (recent.len() * 95).div_ceil(100).max(1) - 1;
        Some(*recent.select_nth_unstable(rank).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_over_the_recent_calls_only() {
        let mut l = Latencies::default();
        assert_eq!(l.p95_since(0), None);
        l.push(0, Duration::from_millis(9_999)); // before the window
        for ms in 1..=100 {
            l.push(1_000, Duration::from_millis(ms));
        }
        assert_eq!(l.p95_since(1_000), Some(95));
        l.push(1_000, Duration::from_millis(500));
        // 101 calls: rank ceil(95.95) = 96.
        assert_eq!(l.p95_since(1_000), Some(96));
    }

    #[test]
    fn keeps_only_the_latest() {
        let mut l = Latencies::default();
        for i in 0..(KEEP as u64 + 10) {
            l.push(0, Duration::from_millis(if i < 10 { 1_000_000 } else { 1 }));
        }
        assert_eq!(l.p95_since(0), Some(1));
    }
}
