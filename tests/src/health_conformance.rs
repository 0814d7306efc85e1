//! The conformance suite of the health store (the fleet's breaker): what
//! the in-process store and the DynamoDB item must both do.

use std::sync::Arc;

use failover_core::breaker::rules::{BreakerState, Bucket, Mode};
use failover_core::breaker::store::{HealthRecord, View};
use failover_core::breaker::HealthStore;
use failover_core::ports::StoreError;

const WINDOW_S: i64 = 30;

fn state(version: u64, mode: Mode) -> BreakerState {
    BreakerState {
        mode,
        version,
        transitions: version,
        ..BreakerState::initial(std::time::Duration::from_secs(5))
    }
}

fn count(second: i64, calls: u32, errors: u32, slow: u32) -> Bucket {
    Bucket {
        second,
        calls,
        errors,
        slow,
        // Distinct from the other counts, so a swapped attribute shows.
        busy_ms: u64::from(calls) * 1_000 + u64::from(errors) * 10 + u64::from(slow) * 3,
        refreshes: calls * 7,
    }
}

/// The stored slot holding `second`, if any.
async fn slot(store: &dyn HealthStore, second: i64) -> Option<Bucket> {
    let record = store.exchange(&[], WINDOW_S).await.expect("read");
    record
        .window
        .into_iter()
        .find(|b| b.second == second && b.calls > 0)
}

pub async fn health_store(store: Arc<dyn HealthStore>) {
    // Nothing written yet.
    let empty = store.exchange(&[], WINDOW_S).await.expect("read");
    assert_eq!(empty.state, None);
    assert_eq!(empty.window.iter().map(|b| b.calls).sum::<u32>(), 0);
    assert_eq!(store.read_view().await.expect("read view"), None);

    // The state is replaced only on the version read.
    let open = state(1, Mode::Open { until_ms: 1_000 });
    store.replace(&open).await.expect("first write");
    assert_eq!(store.replace(&open).await, Err(StoreError::Conflict));
    let half = state(
        3,
        Mode::HalfOpen {
            probe_since_ms: Some(7),
            healthy: 1,
        },
    );
    assert_eq!(store.replace(&half).await, Err(StoreError::Conflict));
    let half = state(
        2,
        Mode::HalfOpen {
            probe_since_ms: Some(7),
            healthy: 1,
        },
    );
    store.replace(&half).await.expect("next version");

    // Counts add up in their second's slot, and leave the state alone.
    let after = store
        .exchange(&[count(1_000, 2, 1, 0), count(1_001, 1, 0, 0)], WINDOW_S)
        .await
        .expect("add");
    assert_eq!(after.state, Some(half.clone()));
    store
        .exchange(&[count(1_000, 3, 0, 1)], WINDOW_S)
        .await
        .expect("add");
    assert_eq!(slot(&*store, 1_000).await, Some(count(1_000, 5, 1, 1)));
    assert_eq!(slot(&*store, 1_001).await, Some(count(1_001, 1, 0, 0)));

    // A later second takes the slot over; an earlier one is dropped.
    store
        .exchange(&[count(1_030, 4, 4, 0)], WINDOW_S)
        .await
        .expect("add");
    assert_eq!(slot(&*store, 1_000).await, None);
    assert_eq!(slot(&*store, 1_030).await, Some(count(1_030, 4, 4, 0)));
    store
        .exchange(&[count(1_000, 9, 9, 9)], WINDOW_S)
        .await
        .expect("add");
    assert_eq!(slot(&*store, 1_030).await, Some(count(1_030, 4, 4, 0)));

    // Writers at once lose no count...
    let writers = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.exchange(&[count(1_040, 1, 1, 0)], WINDOW_S).await })
    });
    for w in writers {
        w.await.expect("join").expect("add");
    }
    assert_eq!(slot(&*store, 1_040).await, Some(count(1_040, 16, 16, 0)));

    // ...and of racing state writes exactly one wins.
    let racers = (0..8).map(|i| {
        let store = store.clone();
        let next = state(3, Mode::Open { until_ms: i });
        tokio::spawn(async move { store.replace(&next).await })
    });
    let mut won = 0;
    for r in racers {
        match r.await.expect("join") {
            Ok(()) => won += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let last = store.exchange(&[], WINDOW_S).await.expect("read");
    assert_eq!(last.state.map(|s| s.version), Some(3));
    // A bucket of refreshes alone (an instance reporting no calls) counts.
    let idle = Bucket {
        second: 1_041,
        refreshes: 12,
        ..Bucket::default()
    };
    store.exchange(&[idle], WINDOW_S).await.expect("add");
    assert_eq!(slot(&*store, 1_041).await, None, "no calls in it");
    let record = store.exchange(&[], WINDOW_S).await.expect("read");
    assert!(record.window.contains(&idle), "{:?}", record.window);
    views(&*store, record).await;
}

/// `seq` orders every write, and a view is replaced only by a later one.
async fn views(store: &dyn HealthStore, record: HealthRecord) {
    // Counts and state writes bump it; reads do not.
    let again = store.exchange(&[], WINDOW_S).await.expect("read");
    assert_eq!(again.seq, record.seq);
    let counted = store
        .exchange(&[count(1_042, 1, 0, 0)], WINDOW_S)
        .await
        .expect("add");
    assert!(counted.seq > record.seq);
    let open = state(4, Mode::Open { until_ms: 9 });
    store.replace(&open).await.expect("next version");
    let replaced = store.exchange(&[], WINDOW_S).await.expect("read");
    assert!(replaced.seq > counted.seq);

    let view = |record: &HealthRecord, taken_ms| View {
        record: record.clone(),
        taken_ms,
    };
    let newer = view(&replaced, 2_000);
    store.publish_view(&newer).await.expect("publish");
    assert_eq!(
        store.read_view().await.expect("read view"),
        Some(newer.clone())
    );
    // A slower publisher's older view does not put the old state back.
    store
        .publish_view(&view(&counted, 3_000))
        .await
        .expect("an older view is no error");
    assert_eq!(store.read_view().await.expect("read view"), Some(newer));
    let latest = view(&record_after(store).await, 4_000);
    store.publish_view(&latest).await.expect("publish");
    assert_eq!(store.read_view().await.expect("read view"), Some(latest));
}

async fn record_after(store: &dyn HealthStore) -> HealthRecord {
    store
        .exchange(&[count(1_043, 3, 2, 1)], WINDOW_S)
        .await
        .expect("add")
}
