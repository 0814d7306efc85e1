//! A cancel racing the worker's claim: exactly one wins, and a cancelled
//! ticket is never sent to the backend. Real threads (no paused clock),
//! so the two really run at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use failover_core::operator::{self, Refused, Stores};
use failover_core::ports::{Queue, SystemClock, TicketStore};
use failover_core::ticket::{ErrorKind, Status};

use super::scripted::Step;
use super::{policy, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_claim_loses_or_wins_whole() {
    const N: usize = 200;
    // Unpaced, so that every delivery goes for its claim at once.
    let unpaced = failover_core::Policy {
        drain_max_rps: 0,
        ..policy()
    };
    let w = Arc::new(world(unpaced, Step::Answer(200, Duration::ZERO)));
    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(w.accept().await);
    }
    let deliveries = w
        .store
        .receive(N, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), N);
    // The worker takes the messages from the first, the operator cancels
    // from the last, each on a thread of its own: the first tickets are
    // claimed, the last cancelled, and where the two meet they race.
    let worker = w.clone();
    let claims = tokio::spawn(async move {
        for d in deliveries {
            worker.worker.handle(&d).await;
        }
    });
    let operator = w.clone();
    let targets = ids.clone();
    let cancels = tokio::spawn(async move {
        let s = &operator.store;
        let stores = Stores {
            tickets: s,
            queue: s,
            clock: &SystemClock,
        };
        let mut won = HashSet::new();
        for id in targets.iter().rev() {
            match operator::cancel(stores, id, "operator:race").await {
                Ok(_) => assert!(won.insert(*id)),
                Err(Refused::NotCancellable { .. }) => {}
                Err(e) => panic!("unexpected refusal: {e}"),
            }
        }
        won
    });
    claims.await.unwrap();
    let cancelled = cancels.await.unwrap();
    let called: HashSet<_> = w.backend.keys().into_iter().collect();
    for id in &ids {
        let t = w.store.get(id).await.unwrap().unwrap();
        let was_cancelled = t.error.as_ref().map(|e| e.kind) == Some(ErrorKind::Cancelled);
        assert_eq!(was_cancelled, cancelled.contains(id), "{t:?}");
        match was_cancelled {
            true => {
                assert_eq!(t.status, Status::Failed);
                assert!(
                    !called.contains(id),
                    "the backend was called for a cancelled ticket"
                );
            }
            false => assert_eq!(t.status, Status::Succeeded, "{t:?}"),
        }
    }
    // Both outcomes happened: the race was real, not one side always first.
    assert!(
        !cancelled.is_empty() && cancelled.len() < N,
        "{} of {N} cancelled",
        cancelled.len()
    );
}
