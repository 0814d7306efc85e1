//! The fault exploration (`failover_tests::explore`) over the embedded
//! adapters: every schedule in memory, and over SQLite, the local mode's
//! store, every single fault (and an error right after it) in both engine
//! modes.

use failover_adapters::memory::MemoryStore;
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_tests::explore::{clock, explore_all, Scope};

#[test]
fn every_single_fault_and_pairs_of_faults_keep_the_promise() {
    let scope = Scope {
        every: 1,
        pairs: true,
        guard_io: false,
    };
    let explored = explore_all(&[false, true], scope, || async {
        let clock = clock();
        (MemoryStore::new(clock.clone()), clock)
    });
    eprintln!("fault exploration, in memory: {explored} schedules explored");
    assert!(explored > 1000, "{explored}");
}

#[test]
fn the_promise_holds_over_sqlite_too() {
    // In memory where the machine has it: the schedules test the adapter's
    // logic, and an fsync per commit would only make them slow.
    let shm = std::path::Path::new("/dev/shm");
    let dir = match shm.is_dir() {
        true => tempfile::tempdir_in(shm),
        false => tempfile::tempdir(),
    }
    .expect("temp dir");
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
    });
    eprintln!("fault exploration, SQLite: {explored} schedules explored");
    assert!(explored > 100, "{explored}");
}
