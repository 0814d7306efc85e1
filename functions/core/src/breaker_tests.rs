//! Breaker behaviour under paused tokio time.

use super::*;
use tokio::time::advance;

fn policy() -> Policy {
    Policy {
        breaker_min_calls: 10,
        error_rate_threshold: 0.10,
        slow_rate_threshold: 0.50,
        slow_call: Duration::from_millis(1000),
        breaker_open: Duration::from_millis(5000),
        breaker_open_max: Duration::from_millis(40_000),
        breaker_close_after: 3,
        ..Policy::default()
    }
}

async fn calls(b: &Breaker, n: u32, outcome: CallOutcome, latency_ms: u64) {
    for _ in 0..n {
        let a = b.admit().await;
        b.record(a, outcome, Duration::from_millis(latency_ms))
            .await;
    }
}

#[tokio::test(start_paused = true)]
async fn error_rate_at_threshold_stays_closed_above_opens() {
    let b = Breaker::new(&policy());
    // 1 error in 10 = 0.10: not above the threshold.
    calls(&b, 9, CallOutcome::Answered, 5).await;
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
    // 2 in 11 = 0.18: above.
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "open");
    assert!(matches!(b.admit().await, Admission::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_before_judging() {
    let b = Breaker::new(&policy());
    calls(&b, 9, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
    calls(&b, 1, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "open");
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_it_too() {
    let b = Breaker::new(&policy());
    // 5 slow of 10 = 0.5: not above; the 11th slow makes 6/11.
    calls(&b, 5, CallOutcome::Answered, 5).await;
    calls(&b, 5, CallOutcome::Answered, 1500).await;
    assert_eq!(b.snapshot().await.state, "closed");
    calls(&b, 1, CallOutcome::Answered, 1500).await;
    assert_eq!(b.snapshot().await.state, "open");
}

#[tokio::test(start_paused = true)]
async fn old_calls_leave_the_window() {
    let b = Breaker::new(&policy());
    calls(&b, 9, CallOutcome::Error, 5).await;
    advance(Duration::from_secs(31)).await;
    calls(&b, 1, CallOutcome::Error, 5).await;
    let s = b.snapshot().await;
    assert_eq!((s.state, s.calls), ("closed", 1));
}

#[tokio::test(start_paused = true)]
async fn recovery_needs_consecutive_healthy_probes() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_millis(4999)).await;
    assert!(matches!(b.admit().await, Admission::Open { .. }));
    advance(Duration::from_millis(1)).await;
    // One probe at a time.
    let probe = b.admit().await;
    assert_eq!(probe, Admission::Probe);
    assert!(matches!(b.admit().await, Admission::Open { .. }));
    b.record(probe, CallOutcome::Answered, Duration::from_millis(5))
        .await;
    for _ in 0..2 {
        let p = b.admit().await;
        assert_eq!(p, Admission::Probe);
        b.record(p, CallOutcome::Answered, Duration::from_millis(5))
            .await;
    }
    assert_eq!(b.snapshot().await.state, "closed");
    assert_eq!(b.admit().await, Admission::Sync);
}

#[tokio::test(start_paused = true)]
async fn failed_probe_doubles_the_open_period_up_to_the_cap() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    let mut expected = 5000;
    for _ in 0..6 {
        advance(Duration::from_millis(expected)).await;
        let p = b.admit().await;
        assert_eq!(p, Admission::Probe);
        b.record(p, CallOutcome::Timeout, Duration::from_millis(3000))
            .await;
        expected = (expected * 2).min(40_000);
        assert_eq!(b.snapshot().await.open_period_ms, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn a_flapping_backend_causes_few_transitions() {
    let b = Breaker::new(&policy());
    // Alternate: one healthy call, one failing, for ten minutes of traffic.
    for i in 0..6000u32 {
        let a = b.admit().await;
        if !matches!(a, Admission::Open { .. }) {
            let outcome = if i % 2 == 0 {
                CallOutcome::Answered
            } else {
                CallOutcome::Error
            };
            b.record(a, outcome, Duration::from_millis(5)).await;
        }
        advance(Duration::from_millis(100)).await;
    }
    // Each failed probe doubles the open period (capped at 40 s), so ten
    // minutes hold at most a few dozen transitions, not thousands.
    let t = b.snapshot().await.transitions;
    assert!(t <= 40, "{t} transitions");
}

#[tokio::test(start_paused = true)]
async fn force_sync_never_opens() {
    let p = Policy {
        force_mode: crate::config::ForceMode::Sync,
        ..policy()
    };
    let b = Breaker::new(&p);
    calls(&b, 50, CallOutcome::Error, 5).await;
    assert_eq!(b.snapshot().await.state, "closed");
}

#[tokio::test(start_paused = true)]
async fn a_lost_probe_does_not_hold_the_slot_forever() {
    let b = Breaker::new(&policy());
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_millis(5000)).await;
    assert_eq!(b.admit().await, Admission::Probe); // never recorded
    advance(Duration::from_secs(60)).await;
    assert_eq!(b.admit().await, Admission::Probe);
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_reported_as_a_metric() {
    struct Recorder(std::sync::Mutex<Vec<&'static str>>);
    impl Metrics for Recorder {
        fn record(&self, metric: Metric) {
            if let Metric::BreakerTransition { to } = metric {
                self.0.lock().unwrap().push(to);
            }
        }
    }
    let recorder = Arc::new(Recorder(Default::default()));
    let b = Breaker::new(&policy()).with_metrics(recorder.clone());
    calls(&b, 10, CallOutcome::Error, 5).await;
    advance(Duration::from_secs(5)).await;
    for _ in 0..3 {
        let p = b.admit().await;
        b.record(p, CallOutcome::Answered, Duration::from_millis(5))
            .await;
    }
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen, vec!["open", "half_open", "closed"]);
    assert_eq!(b.snapshot().await.transitions, 3);
}
