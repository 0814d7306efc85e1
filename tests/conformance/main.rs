//! Every back end of every port passes the same suite.

use std::sync::Arc;

use failover_adapters::memory::MemoryStore;
use failover_adapters::sqlite::{SqliteOptions, SqliteStore};
use failover_core::ports::SystemClock;
use failover_tests::conformance;

const NORMAL: failover_core::ports::Priority = failover_core::ports::Priority {
    lane: failover_core::lane::Lane::Normal,
    since_ms: 0,
};

fn memory() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(Arc::new(SystemClock)))
}

fn sqlite() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(
        &dir.path().join("c.sqlite3"),
        Arc::new(SystemClock),
        SqliteOptions::default(),
    )
    .expect("open");
    (Arc::new(store), dir)
}

#[tokio::test]
async fn in_process_health_store() {
    conformance::health_store(Arc::new(failover_core::breaker::InProcessHealth::default())).await;
}

#[tokio::test]
async fn memory_ticket_store() {
    conformance::ticket_store(memory()).await;
}

#[tokio::test]
async fn memory_idempotency_store() {
    conformance::idempotency_store(memory()).await;
}

#[tokio::test]
async fn memory_queue() {
    conformance::queue(memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ticket_store() {
    let (s, _dir) = sqlite();
    conformance::ticket_store(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_idempotency_store() {
    let (s, _dir) = sqlite();
    conformance::idempotency_store(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue() {
    let (s, _dir) = sqlite();
    conformance::queue(s).await;
}

fn now_ms() -> i64 {
    use failover_core::Clock;
    SystemClock.now_ms()
}

#[tokio::test]
async fn memory_queue_lanes() {
    let ageing = failover_core::lane::Lanes::default().ageing;
    conformance::queue_lanes(memory(), now_ms(), Some(ageing)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue_lanes() {
    let (s, _dir) = sqlite();
    let ageing = SqliteOptions::default().lane_ageing;
    conformance::queue_lanes(s, now_ms(), Some(ageing)).await;
}

/// The SQLite store survives a reopen: what was committed is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_everything() {
    use failover_core::ports::{Queue, TicketStore};
    use std::time::Duration;
    let (s, dir) = sqlite();
    let t = conformance::sample_ticket();
    s.create(&t).await.unwrap();
    s.send("kept", NORMAL, Duration::ZERO).await.unwrap();
    drop(s);
    let again = SqliteStore::open(
        &dir.path().join("c.sqlite3"),
        Arc::new(SystemClock),
        SqliteOptions::default(),
    )
    .unwrap();
    assert_eq!(again.get(&t.id).await.unwrap(), Some(t));
    let got = again
        .receive(1, Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got[0].body, "kept");
}

/// A message received more than `max_receives` times is redriven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_redrives_after_max_receives() {
    use failover_core::ports::Queue;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteStore::open(
        &dir.path().join("r.sqlite3"),
        Arc::new(SystemClock),
        SqliteOptions {
            max_receives: 2,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    q.send("crashes every worker", NORMAL, Duration::ZERO)
        .await
        .unwrap();
    for _ in 0..2 {
        let d = q
            .receive(1, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap();
        q.defer(&d[0], Duration::ZERO).await.unwrap();
    }
    assert!(q
        .receive(1, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    let dead = failover_core::operator::ports::DeadLetters::dead_letters(&q, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "crashes every worker");
    assert_eq!(dead[0].receive_count, 2);
}

/// Beyond the shared contract: the embedded queue refuses a stale receipt,
/// so a slow worker cannot delete a message another worker now holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_stale_receipts() {
    use failover_core::ports::{Queue, QueueError};
    use std::time::Duration;
    let (q, _dir) = sqlite();
    q.send("m", NORMAL, Duration::ZERO).await.unwrap();
    let first = q
        .receive(1, Duration::from_millis(200), Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = q
        .receive(1, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(q.ack(&first[0]).await, Err(QueueError::StaleReceipt));
    assert_eq!(
        q.defer(&first[0], Duration::ZERO).await,
        Err(QueueError::StaleReceipt)
    );
    q.ack(&second[0]).await.unwrap();
}

/// Local mode's retention: what is past it goes, what is not stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_purges_what_is_past_its_retention() {
    use failover_core::ports::{
        EventPublisher, IdemOutcome, IdemRecord, IdempotencyStore, Queue, TicketStore, TopicEvent,
    };
    use failover_core::ticket::{CapturedRequest, Reason, Ticket, TicketId};
    use failover_core::Clock;
    use std::time::Duration;

    let (s, _dir) = sqlite();
    let now = SystemClock.now_ms();
    let req = CapturedRequest::new("{}", "application/json", "r");
    let day = 24 * 3600 * 1000;
    // Expired two days ago: past the day of retention. And a live one.
    let old = Ticket::new(
        TicketId::new(),
        Reason::Timeout,
        req.clone(),
        now - 3 * day,
        day,
    );
    let live = Ticket::new(TicketId::new(), Reason::Timeout, req, now, day);
    s.create(&old).await.unwrap();
    s.create(&live).await.unwrap();
    let record = |key: &str, expires_at| IdemRecord {
        key: key.into(),
        fingerprint: "f".into(),
        version: 1,
        outcome: IdemOutcome::InFlight {
            lease_until: 0,
            ticket_id: TicketId::new(),
        },
        expires_at,
    };
    s.insert(&record("gone", now - 1)).await.unwrap();
    s.insert(&record("kept", now + day)).await.unwrap();
    let event = TopicEvent {
        event_id: "e1".into(),
        event_type: "ticket.succeeded".into(),
        status: "succeeded".into(),
        body: "{}".into(),
        traceparent: None,
        notice: None,
    };
    s.publish(&event).await.unwrap();
    s.send("poison", NORMAL, Duration::ZERO).await.unwrap();
    let d = s
        .receive(1, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    s.dead_letter(&d[0], "test").await.unwrap();

    // Publications and dead letters are kept for `keep`...
    let p = s.purge(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(
        (p.tickets, p.keys, p.publications, p.dead_letters),
        (1, 1, 0, 0)
    );
    assert_eq!(s.ticket_ids().await.unwrap(), vec![live.id]);
    assert!(IdempotencyStore::get(s.as_ref(), "kept")
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.publications().await.unwrap().len(), 1);
    // ...and go after it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let p = s.purge(Duration::from_millis(10)).await.unwrap();
    assert_eq!(
        (p.tickets, p.keys, p.publications, p.dead_letters),
        (0, 0, 1, 1)
    );
    assert!(s.publications().await.unwrap().is_empty());
    assert!(
        failover_core::operator::ports::DeadLetters::dead_letters(s.as_ref(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.stats().await.unwrap().dead_letters, 0);
}

#[tokio::test]
async fn memory_ticket_scan() {
    failover_tests::operator_conformance::ticket_scan(memory().as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ticket_scan() {
    let (s, _dir) = sqlite();
    failover_tests::operator_conformance::ticket_scan(s.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dead_letters() {
    let (s, _dir) = sqlite();
    failover_tests::operator_conformance::dead_letters(s.as_ref()).await;
}

#[tokio::test]
async fn memory_drills() {
    failover_tests::operator_conformance::drills(memory().as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_drills() {
    let (s, _dir) = sqlite();
    failover_tests::operator_conformance::drills(s.as_ref()).await;
}

#[tokio::test]
async fn memory_breaker_board() {
    failover_tests::operator_conformance::breaker_board(memory().as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_breaker_board() {
    let (s, _dir) = sqlite();
    failover_tests::operator_conformance::breaker_board(s.as_ref()).await;
}
