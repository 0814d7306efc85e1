//! The conformance suites of the operator's ports: the ticket scan and the
//! dead letters, run against SQLite and the AWS adapters alike.

use std::collections::HashSet;
use std::time::Duration;

use failover_core::lane::Lane;
use failover_core::operator::ports::{DeadLetters, TicketScan};
use failover_core::ports::{Priority, Queue, TicketStore};
use failover_core::ticket::{Reason, Ticket, TicketId, RETENTION_AFTER_EXPIRY_MS};

use crate::conformance::sample_ticket;

/// Pages of 3 visit every live ticket once; one past retention is left out.
pub async fn ticket_scan<S: TicketStore + TicketScan>(store: &S) {
    let mut made = HashSet::new();
    for _ in 0..7 {
        let t = sample_ticket();
        store.create(&t).await.expect("create");
        made.insert(t.id);
    }
    let mut gone = sample_ticket();
    gone.id = TicketId::new();
    gone.reason = Reason::Forced;
    gone.expires_at = gone.created_at - RETENTION_AFTER_EXPIRY_MS - 1_000;
    store.create(&gone).await.expect("create");
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = store.scan(cursor, 3).await.expect("scan");
        pages += 1;
        seen.extend(page.tickets.iter().map(|t: &Ticket| t.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 20, "the scan never ends");
    }
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a ticket came twice");
    assert!(
        !unique.contains(&gone.id),
        "a ticket past retention was listed"
    );
    // Other suites may share the store: ours are all there.
    assert!(made.is_subset(&unique), "a ticket was missed");
}

/// A dead letter is listed with its reason and lane, and a redrive moves
/// it back to its lane's queue as a fresh message, bounded by `max`.
pub async fn dead_letters<Q: Queue + DeadLetters>(queue: &Q) {
    let bulk = Priority {
        lane: Lane::Bulk,
        since_ms: 0,
    };
    for body in ["dead one", "dead two"] {
        queue.send(body, bulk, Duration::ZERO).await.expect("send");
        let d = receive_one(queue).await;
        queue
            .dead_letter(&d, "cannot be parsed")
            .await
            .expect("dead letter");
    }
    let listed = queue.dead_letters(10).await.expect("list");
    let mut bodies: Vec<_> = listed.iter().map(|d| d.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, ["dead one", "dead two"]);
    for d in &listed {
        assert_eq!(d.reason.as_deref(), Some("cannot be parsed"));
        assert_eq!(d.lane, Lane::Bulk);
    }
    // Listing leaves them where they were.
    assert_eq!(queue.dead_letters(10).await.expect("list").len(), 2);
    assert_eq!(queue.redrive(1).await.expect("redrive"), 1);
    assert_eq!(queue.dead_letters(10).await.expect("list").len(), 1);
    let back = receive_one(queue).await;
    assert!(back.body.starts_with("dead "), "{}", back.body);
    assert_eq!(back.priority.lane, Lane::Bulk);
    assert_eq!(back.receive_count, 1, "a fresh message");
    queue.ack(&back).await.expect("ack");
    assert_eq!(queue.redrive(10).await.expect("redrive"), 1);
    assert!(queue.dead_letters(10).await.expect("list").is_empty());
    assert_eq!(queue.redrive(10).await.expect("redrive"), 0);
}

async fn receive_one<Q: Queue>(queue: &Q) -> failover_core::ports::Delivery {
    for _ in 0..10 {
        let got = queue
            .receive(1, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .expect("receive");
        if let Some(d) = got.into_iter().next() {
            return d;
        }
    }
    panic!("nothing to receive");
}

/// Drills start (replacing one of the same scope), read back, and stop.
pub async fn drills<S: failover_core::drill::DrillStore>(store: &S) {
    use failover_core::config::ForceMode;
    use failover_core::drill::{Drill, Scope};
    let now = failover_core::Clock::now_ms(&failover_core::ports::SystemClock);
    let drill = |mode, scope| Drill {
        mode,
        scope,
        started_ms: now,
        until_ms: now + 60_000,
        by: "operator:conformance".into(),
    };
    assert!(store.drills().await.expect("read").is_empty());
    store
        .start(&drill(ForceMode::Async, Scope::All))
        .await
        .expect("start");
    let group = drill(ForceMode::Async, Scope::Group("pay".into()));
    store.start(&group).await.expect("start");
    let sync = drill(ForceMode::Sync, Scope::All);
    store.start(&sync).await.expect("start");
    let mut read = store.drills().await.expect("read");
    read.sort_by_key(|d| d.scope.key());
    assert_eq!(
        read,
        vec![sync, group.clone()],
        "the same scope was replaced"
    );
    assert_eq!(store.stop(Some(&Scope::All)).await.expect("stop"), 1);
    assert_eq!(store.drills().await.expect("read"), vec![group]);
    assert_eq!(
        store
            .stop(Some(&Scope::Route("x".into())))
            .await
            .expect("stop"),
        0
    );
    assert_eq!(store.stop(None).await.expect("stop"), 1);
    assert!(store.drills().await.expect("read").is_empty());
}

/// The breaker board: posts replace each other; resets are numbered in
/// order, read after a mark, and only the latest are kept; a server's
/// round applies the resets meant for its groups and posts every group.
pub async fn breaker_board<B: failover_core::breaker::board::BreakerBoard>(board: &B) {
    use failover_core::breaker::board::{Posted, ResetRequest, Tender, RESETS_KEPT};
    use failover_core::breaker::{Breaker, CallOutcome, HealthGate, HealthGates};
    use std::sync::Arc;

    assert!(board.posted().await.expect("read").is_empty());
    let post = |group: &str, at_ms| Posted {
        group: group.into(),
        snapshot: serde_json::json!({"state": "open", "calls": 12}),
        at_ms,
    };
    board
        .post(&[post("b", 1), post("a", 1)])
        .await
        .expect("post");
    board
        .post(&[post("b", 2), post("a", 2)])
        .await
        .expect("post");
    assert_eq!(
        board.posted().await.expect("read"),
        vec![post("b", 2), post("a", 2)],
        "the latest post, in its order"
    );

    let reset = |group: Option<&str>| ResetRequest {
        id: 0,
        group: group.map(str::to_string),
        at_ms: 5,
        by: "operator:conformance".into(),
    };
    let first = board.request_reset(&reset(None)).await.expect("reset");
    let second = board
        .request_reset(&reset(Some("pay")))
        .await
        .expect("reset");
    assert!(second > first);
    let after = board.resets_after(first).await.expect("read");
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].id, after[0].group.as_deref()),
        (second, Some("pay"))
    );
    assert_eq!(after[0].by, "operator:conformance");
    for _ in 0..RESETS_KEPT {
        board.request_reset(&reset(None)).await.expect("reset");
    }
    let kept = board.resets_after(i64::MIN).await.expect("read");
    assert_eq!(kept.len() as i64, RESETS_KEPT, "only the latest are kept");
    assert!(kept.windows(2).all(|w| w[0].id < w[1].id));

    // A server with one open breaker, of the (single) group "".
    let gate = Arc::new(Breaker::new(&failover_core::Policy::default()));
    for _ in 0..20 {
        let a = gate.admit().await;
        gate.record(a, CallOutcome::Error, Duration::from_millis(1))
            .await;
    }
    assert_eq!(gate.snapshot().await.state, "open");
    let gates = HealthGates::single(gate.clone());
    let tender = Tender {
        board,
        gates: &gates,
    };
    let seen = tender.start().await.expect("start");
    assert_eq!(
        seen,
        kept.last().expect("kept").id,
        "old resets are not applied"
    );
    board
        .request_reset(&reset(Some("other")))
        .await
        .expect("reset");
    let seen = tender.round(seen, 7).await.expect("round");
    assert_eq!(gate.snapshot().await.state, "open", "another group's reset");
    let posted = board.posted().await.expect("read");
    assert_eq!((posted.len(), posted[0].at_ms), (1, 7));
    assert_eq!(posted[0].snapshot["state"], "open");
    board.request_reset(&reset(None)).await.expect("reset");
    let last = tender.round(seen, 8).await.expect("round");
    assert!(last > seen);
    assert_eq!(gate.snapshot().await.state, "closed");
    assert_eq!(
        board.posted().await.expect("read")[0].snapshot["state"],
        "closed"
    );
    assert_eq!(tender.round(last, 9).await.expect("round"), last);
}
