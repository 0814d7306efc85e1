//! The fault exploration (`failover_tests::explore`) over the embedded
//! adapters: every schedule in memory, and over SQLite, the local mode's
//! store, every single fault and the pairs in local mode's engine mode.

use failover_adapters::memory::MemoryStore;
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_tests::explore::{clock, explore_all, Scope};

#[tokio::test(start_paused = true)]
async fn every_single_fault_and_pairs_of_faults_keep_the_promise() {
    let scope = Scope {
        every: 1,
        pairs: true,
        guard_io: false,
    };
    let explored = explore_all(&[false, true], scope, || async {
        let clock = clock();
        (MemoryStore::new(clock.clone()), clock)
    })
    .await;
    eprintln!("fault exploration, in memory: {explored} schedules explored");
    assert!(explored > 1000, "{explored}");
}

#[tokio::test(start_paused = true)]
async fn the_promise_holds_over_sqlite_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = std::sync::atomic::AtomicUsize::new(0);
    let scope = Scope {
        every: 1,
        pairs: false,
        guard_io: true,
    };
    let explored = explore_all(&[false, true], scope, || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("run-{i}.db"));
        async move {
            let clock = clock();
            let store = SqliteStore::open(&path, clock.clone(), SqliteOptions::default())
                .expect("open SQLite");
            (store, clock)
        }
    })
    .await;
    eprintln!("fault exploration, SQLite: {explored} schedules explored");
    assert!(explored > 100, "{explored}");
}
