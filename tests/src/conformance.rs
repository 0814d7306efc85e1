//! The conformance suites: what every adapter of a port must do.
//!
//! One suite per port, run against every back end (in memory, SQLite, and
//! the AWS adapters on LocalStack): the core relies on these semantics and
//! nothing else. Durations are whole seconds where they touch the queue, so
//! SQS's one-second visibility granularity passes the same suite.

use std::sync::Arc;
use std::time::Duration;

use failover_core::lane::Lane;
use failover_core::ports::{
    IdemOutcome, IdemRecord, IdempotencyStore, Priority, Queue, StoreError, SystemClock,
    TicketStore,
};
use failover_core::ticket::{CapturedRequest, Reason, Status, Ticket, TicketId};
use failover_core::Clock;

pub use crate::health_conformance::health_store;

fn now() -> i64 {
    SystemClock.now_ms()
}

pub fn sample_ticket() -> Ticket {
    let req = CapturedRequest {
        callback_url: Some("https://hooks.example.com/x".into()),
        ..CapturedRequest::new(r#"{"amount":42}"#, "application/json", "req-1")
    };
    Ticket::new(TicketId::new(), Reason::Timeout, req, now(), 3_600_000)
}

/// The largest ticket the product can make: a request body of the largest
/// `MAX_BODY_BYTES` of the characters JSON escapes most; the largest answer,
/// not UTF-8; an event of the largest size that carries an answer, all
/// quotes; and every notification attempt `WEBHOOK_MAX_ATTEMPTS` allows on
/// both channels, each with an error of the longest kept length.
pub fn largest_ticket() -> Ticket {
    use failover_core::config::{BODY_LIMIT, NOTIFY_ATTEMPTS_LIMIT};
    use failover_core::ticket::{
        BackendResult, Channel, NotificationAttempt, NOTIFICATION_ERROR_MAX,
    };
    let limit = BODY_LIMIT as usize;
    let mut t = sample_ticket();
    t.request.body = "\"\u{1}\\".repeat(limit / 3).into_bytes();
    let answer = BackendResult {
        status_code: 200,
        body: (0..limit).map(|i| (i % 251) as u8 | 0x80).collect(),
        content_type: Some("application/octet-stream".into()),
        headers: Vec::new(),
    };
    let mut t = t
        .claim(now(), now() + 10_000)
        .and_then(|t| t.succeed(now(), answer))
        .expect("legal transitions");
    let mut event = failover_core::attempt::pending_event(&t, now());
    event.payload = "\"".repeat(failover_core::view::EVENT_MAX_BYTES);
    for n in 1..=NOTIFY_ATTEMPTS_LIMIT {
        for channel in [Channel::Sns, Channel::Webhook] {
            let attempt = NotificationAttempt {
                channel,
                attempt: n,
                at: now(),
                delivered: false,
                status_code: Some(503),
                error: Some("\"".repeat(NOTIFICATION_ERROR_MAX)),
            };
            t = t.with_notification(now(), attempt, event.clone());
        }
    }
    t
}

/// The largest ticket, through its life: captured with the largest request,
/// then finished with the largest answer, event and attempts.
async fn largest_ticket_round_trip(store: &dyn TicketStore) {
    let largest = largest_ticket();
    let mut captured = sample_ticket();
    captured.id = largest.id;
    captured.request = largest.request.clone();
    store.create(&captured).await.expect("the largest request");
    let got = store.get(&captured.id).await.unwrap();
    assert!(
        got == Some(captured.clone()),
        "the largest request, exactly"
    );
    let claimed = captured.claim(now(), now() + 10_000).unwrap();
    store.update(&claimed, Status::Queued, 1).await.unwrap();
    let mut finished = largest;
    finished.version = claimed.version + 1;
    store
        .update(&finished, Status::Processing, claimed.version)
        .await
        .expect("the largest finished ticket");
    let got = store.get(&finished.id).await.unwrap();
    assert!(got == Some(finished.clone()), "the largest ticket, exactly");
    // And once more (a later notification rewrites it with the same bodies).
    let mut again = finished.clone();
    again.version += 1;
    store
        .update(&again, Status::Succeeded, finished.version)
        .await
        .unwrap();
    assert!(store.get(&again.id).await.unwrap() == Some(again));
}

pub async fn ticket_store(store: Arc<dyn TicketStore>) {
    largest_ticket_round_trip(store.as_ref()).await;
    let t = sample_ticket();
    assert_eq!(store.get(&t.id).await.unwrap(), None, "unknown id");
    store.create(&t).await.unwrap();
    assert_eq!(
        store.get(&t.id).await.unwrap().as_ref(),
        Some(&t),
        "round trip"
    );
    assert_eq!(
        store.create(&t).await,
        Err(StoreError::Conflict),
        "create twice"
    );

    let claimed = t.claim(now(), now() + 10_000).unwrap();
    assert_eq!(
        store.update(&claimed, Status::Processing, 1).await,
        Err(StoreError::Conflict),
        "wrong expected status"
    );
    assert_eq!(
        store.update(&claimed, Status::Queued, 7).await,
        Err(StoreError::Conflict),
        "wrong expected version"
    );
    store.update(&claimed, Status::Queued, 1).await.unwrap();
    assert_eq!(store.get(&t.id).await.unwrap(), Some(claimed.clone()));
    assert_eq!(
        store.update(&claimed, Status::Queued, 1).await,
        Err(StoreError::Conflict),
        "the same transition twice"
    );

    // Many racing claims of one version: exactly one wins.
    let racer = sample_ticket();
    store.create(&racer).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let next = racer.claim(now() + i, now() + 10_000).unwrap();
        tasks.push(tokio::spawn(async move {
            store.update(&next, Status::Queued, 1).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one racing claim wins");

    // Delete is conditional on the version too.
    assert_eq!(store.delete(&t.id, 1).await, Err(StoreError::Conflict));
    store.delete(&t.id, 2).await.unwrap();
    assert_eq!(store.get(&t.id).await.unwrap(), None);
    assert_eq!(store.delete(&t.id, 2).await, Err(StoreError::Conflict));

    // Past retention a ticket is gone, whatever the back end's TTL does.
    let mut old = sample_ticket();
    old.expires_at = now() - failover_core::ticket::RETENTION_AFTER_EXPIRY_MS - 1000;
    store.create(&old).await.unwrap();
    assert_eq!(store.get(&old.id).await.unwrap(), None, "purged ticket");

    // The sweeper's view: non-terminal tickets whose due time has passed.
    let mut waiting = sample_ticket();
    waiting.created_at = now() - 60_000;
    store.create(&waiting).await.unwrap();
    let finished = sample_ticket()
        .claim(now(), now() + 1)
        .unwrap()
        .succeed(
            now(),
            failover_core::ticket::BackendResult {
                status_code: 200,
                // Not UTF-8: a body is bytes, kept exactly.
                body: vec![0xff, 0xfe, 0x00, b'{', 0xc3, 0x28],
                content_type: Some("application/octet-stream".into()),
                headers: Vec::new(),
            },
        )
        .unwrap();
    let mut finished = finished;
    finished.created_at = now() - 60_000;
    store.create(&finished).await.unwrap();
    assert_eq!(
        store.get(&finished.id).await.unwrap(),
        Some(finished.clone())
    );
    // A finished ticket with a notification still to send, due earlier.
    let mut noticing = finished.clone();
    noticing.id = TicketId::new();
    noticing.event = Some(failover_core::attempt::pending_event(&noticing, now()));
    if let Some(e) = noticing.event.as_mut() {
        e.next_sns_at = now() - 120_000;
    }
    store.create(&noticing).await.unwrap();
    let due = store.overdue(now() - 1000, 1000).await.unwrap();
    assert!(due.contains(&waiting.id), "a queued ticket long due");
    assert!(due.contains(&noticing.id), "an overdue notification");
    assert!(
        !due.contains(&finished.id),
        "terminal tickets are never due"
    );
    assert!(
        !due.contains(&racer.id),
        "a ticket under a live lease is not due"
    );
    assert!(!due.contains(&old.id), "purged tickets are gone");
    assert_eq!(
        store.oldest_due().await.unwrap(),
        Some(waiting.created_at),
        "the longest waiting request (a pending notification is no backlog)"
    );
    let earlier = store.overdue(waiting.created_at, 1000).await.unwrap();
    assert!(!earlier.contains(&waiting.id), "strictly before");
    // Once it moves on, it leaves the index (or moves in it).
    let claimed = waiting.claim(now(), now() + 60_000).unwrap();
    store.update(&claimed, Status::Queued, 1).await.unwrap();
    let due = store.overdue(now() - 1000, 1000).await.unwrap();
    assert!(
        !due.contains(&waiting.id),
        "claimed: due when its lease ends"
    );
    let oldest = store.oldest_due().await.unwrap();
    assert!(oldest > Some(waiting.created_at), "{oldest:?}");
}

fn record(key: &str, version: u64, expires_at: i64) -> IdemRecord {
    IdemRecord {
        key: key.into(),
        fingerprint: "abc".into(),
        version,
        outcome: IdemOutcome::InFlight {
            lease_until: now() + 5000,
            ticket_id: TicketId::new(),
        },
        expires_at,
    }
}

pub async fn idempotency_store(store: Arc<dyn IdempotencyStore>) {
    let key = format!("key-{}", TicketId::new());
    let r = record(&key, 1, now() + 60_000);
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.insert(&r).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(r.clone()));
    assert_eq!(store.insert(&r).await, Err(StoreError::Conflict));

    let done = IdemRecord {
        version: 2,
        outcome: IdemOutcome::Accepted {
            ticket_id: TicketId::new(),
            reason: Reason::Timeout,
        },
        ..r.clone()
    };
    assert_eq!(store.replace(&done, 5).await, Err(StoreError::Conflict));
    store.replace(&done, 1).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(done.clone()));

    // The largest answer a sync call can store, not UTF-8.
    let large = IdemRecord {
        version: 3,
        outcome: IdemOutcome::Sync {
            status: 200,
            body: (0..failover_core::config::BODY_LIMIT)
                .map(|i| (i % 253) as u8 | 0x80)
                .collect(),
            content_type: Some("application/octet-stream".into()),
            headers: Vec::new(),
            ticket_id: TicketId::new(),
        },
        ..done.clone()
    };
    store.replace(&large, 2).await.expect("the largest answer");
    assert!(store.get(&key).await.unwrap() == Some(large), "exactly");

    // An expired record is invisible and its key can be used again.
    let stale_key = format!("stale-{}", TicketId::new());
    store
        .insert(&record(&stale_key, 1, now() - 1000))
        .await
        .unwrap();
    assert_eq!(store.get(&stale_key).await.unwrap(), None);
    store
        .insert(&record(&stale_key, 1, now() + 60_000))
        .await
        .unwrap();
}

/// How long a received message stays hidden in these tests: every check
/// that it is hidden runs well inside it, even on a busy 2-core machine
/// (a one-second window could be missed by a stall, failing the test for
/// no fault of the adapter).
const VIS: Duration = Duration::from_secs(3);
/// Waited to see a message come back after `VIS` (or a delay of `VIS`).
const PAST_VIS: Duration = Duration::from_millis(3300);
/// A message of the default lane that has not waited.
const NORMAL: Priority = Priority {
    lane: Lane::Normal,
    since_ms: i64::MAX,
};

/// Receives one message that becomes visible within `within`, by long
/// polls of a second (each well under the SDK's 5 s operation timeout).
async fn receive_within(
    queue: &dyn Queue,
    within: Duration,
) -> Vec<failover_core::ports::Delivery> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let got = receive_one(queue, VIS, Duration::from_secs(1)).await;
        if !got.is_empty() || tokio::time::Instant::now() >= until {
            return got;
        }
    }
}

/// Receives until a message arrives (or `wait` passes).
async fn receive_one(
    queue: &dyn Queue,
    visibility: Duration,
    wait: Duration,
) -> Vec<failover_core::ports::Delivery> {
    queue.receive(1, visibility, wait).await.unwrap()
}

/// Every queue test uses its own fresh queue.
pub async fn queue(queue: Arc<dyn Queue>) {
    let q = queue.as_ref();
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "starts empty"
    );

    // Send and receive; the body comes back unchanged.
    let id = q
        .send(r#"{"v":1,"n":1}"#, NORMAL, Duration::ZERO)
        .await
        .unwrap();
    let got = receive_one(q, VIS, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, r#"{"v":1,"n":1}"#);
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].receive_count, 1);

    // Hidden while in flight, back after the visibility timeout, with a new
    // receipt and a higher receive count. What an older receipt still does
    // is left open (SQS: "the request succeeds, but the message might not be
    // deleted"), so the core never relies on it: it acks with the latest.
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "invisible in flight"
    );
    tokio::time::sleep(PAST_VIS).await;
    let again = receive_one(q, VIS, Duration::from_secs(2)).await;
    assert_eq!(again.len(), 1, "redelivered");
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt, got[0].receipt);
    q.ack(&again[0]).await.unwrap();
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "acked"
    );
    tokio::time::sleep(PAST_VIS).await;
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "gone for good"
    );

    // Defer: visible again only after the delay.
    q.send("deferred", NORMAL, Duration::ZERO).await.unwrap();
    let d = receive_one(q, Duration::from_secs(30), Duration::from_secs(2)).await;
    assert_eq!(d.len(), 1);
    q.defer(&d[0], VIS).await.unwrap();
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "deferred"
    );
    let d2 = receive_within(q, VIS * 2).await;
    assert_eq!(d2.len(), 1, "visible after the delay");
    assert_eq!(d2[0].body, "deferred");

    // Dead-letter: gone from the queue, counted.
    let before = q.stats().await.unwrap().dead_letters;
    q.dead_letter(&d2[0], "poison").await.unwrap();
    tokio::time::sleep(PAST_VIS).await;
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "dead-lettered"
    );
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.dead_letters, before + 1);

    // A delayed send is invisible until its delay passes.
    q.send("later", NORMAL, VIS).await.unwrap();
    assert!(
        receive_one(q, VIS, Duration::ZERO).await.is_empty(),
        "delayed"
    );
    let l = receive_within(q, VIS * 2).await;
    assert_eq!(l.len(), 1);
    q.ack(&l[0]).await.unwrap();

    // Long polling returns as soon as a message arrives.
    let sender = queue.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send("wake", NORMAL, Duration::ZERO).await.unwrap();
    });
    let started = tokio::time::Instant::now();
    let w = receive_one(q, VIS, Duration::from_secs(5)).await;
    assert_eq!(w.len(), 1, "long poll got the message");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "long poll returned early"
    );
    q.ack(&w[0]).await.unwrap();

    // Stats see visible and in-flight messages.
    q.send("a", NORMAL, Duration::ZERO).await.unwrap();
    q.send("b", NORMAL, Duration::ZERO).await.unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!(s.visible + s.in_flight, 2, "{s:?}");
    let both = q
        .receive(10, Duration::from_secs(30), Duration::from_secs(2))
        .await
        .unwrap();
    let mut rest = both.len();
    while rest < 2 {
        rest += q
            .receive(10, Duration::from_secs(30), Duration::from_secs(2))
            .await
            .unwrap()
            .len();
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.visible, s.in_flight), (0, 2), "{s:?}");
}

/// Lanes: what a queue hands out comes highest lane first, whatever the
/// order sent, then in order sent; a delivery keeps its priority; stats
/// count each lane. `ages`: the adapter also ages a lane up (one lane for
/// each `ageing` waited since `since_ms`; SQS leaves that to the worker).
pub async fn queue_lanes(queue: Arc<dyn Queue>, now_ms: i64, ageing: Option<Duration>) {
    let q = queue.as_ref();
    let fresh = |lane| Priority {
        lane,
        since_ms: now_ms,
    };
    for (body, lane) in [
        ("b1", Lane::Bulk),
        ("n1", Lane::Normal),
        ("c1", Lane::Critical),
        ("n2", Lane::Normal),
        ("c2", Lane::Critical),
    ] {
        q.send(body, fresh(lane), Duration::ZERO).await.unwrap();
    }
    let s = q.stats().await.unwrap();
    let visible: Vec<(Lane, u64)> = s.lanes.iter().map(|l| (l.lane, l.visible)).collect();
    assert_eq!(
        visible,
        [(Lane::Critical, 2), (Lane::Normal, 2), (Lane::Bulk, 1)],
        "{s:?}"
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let batch = q
            .receive(10, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "only {got:?} came");
        got.extend(batch);
    }
    let order: Vec<&str> = got.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(order, ["c1", "c2", "n1", "n2", "b1"]);
    assert_eq!(got[0].priority, fresh(Lane::Critical));
    assert_eq!(got[4].priority, fresh(Lane::Bulk));
    for d in &got {
        q.ack(d).await.unwrap();
    }
    let Some(ageing) = ageing else {
        return;
    };
    // A bulk message that has waited two ageing periods is served as
    // critical, and a normal one one period as critical too: both before
    // a fresh normal one, in the order sent.
    let waited = |periods: i64| now_ms - periods * ageing.as_millis() as i64 - 1;
    q.send("n-fresh", fresh(Lane::Normal), Duration::ZERO)
        .await
        .unwrap();
    let old_bulk = Priority {
        lane: Lane::Bulk,
        since_ms: waited(2),
    };
    q.send("b-old", old_bulk, Duration::ZERO).await.unwrap();
    let old_normal = Priority {
        lane: Lane::Normal,
        since_ms: waited(1),
    };
    q.send("n-old", old_normal, Duration::ZERO).await.unwrap();
    let got = q
        .receive(10, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    let order: Vec<&str> = got.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(order, ["b-old", "n-old", "n-fresh"]);
}
