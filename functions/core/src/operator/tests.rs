//! Cancel and rerun as transitions: what each allows and what it leaves.

use super::*;
use crate::attempt::exhausted;
use crate::ticket::{BackendResult, CapturedRequest, Reason};

fn queued() -> Ticket {
    let req = CapturedRequest::new("{}", "application/json", "r");
    Ticket::new(TicketId::new(), Reason::Timeout, req, 1_000, 10_000)
}

fn failed(kind: ErrorKind) -> Ticket {
    let claimed = queued().claim(2_000, 3_000).unwrap();
    let error = TicketError {
        kind,
        message: "x".into(),
    };
    let last = BackendResult {
        status_code: 422,
        body: b"no".to_vec(),
        content_type: None,
        headers: Vec::new(),
    };
    with_event(claimed.fail(2_500, error, Some(last)).unwrap(), 2_500)
}

#[test]
fn a_queued_ticket_is_cancelled_with_its_event_and_who_did_it() {
    let t = queued();
    let c = t.cancel(1_500, "alice").unwrap();
    assert_eq!((c.status, c.version), (Status::Failed, t.version + 1));
    assert_eq!(c.error.as_ref().map(|e| e.kind), Some(ErrorKind::Cancelled));
    assert!(c.event.is_some(), "a terminal transition is notified");
    assert_eq!(
        c.actions,
        vec![Action {
            at: 1_500,
            by: "alice".into(),
            what: ActionKind::Cancel
        }]
    );
    assert_eq!(c.due_at(), Some(1_500), "its notification is due now");
}

#[test]
fn only_a_queued_ticket_can_be_cancelled() {
    let processing = queued().claim(2_000, 3_000).unwrap();
    for t in [processing, failed(ErrorKind::Exhausted)] {
        assert!(matches!(
            t.cancel(4_000, "bob"),
            Err(Refused::NotCancellable { .. })
        ));
    }
}

#[test]
fn a_rerun_starts_afresh_under_the_same_id_with_a_new_event_id() {
    let f = failed(ErrorKind::Exhausted);
    let r = f
        .rerun(50_000, 10_000, "op", RetryScope::default())
        .unwrap();
    assert_eq!(
        (r.id, r.status, r.attempts, r.runs),
        (f.id, Status::Queued, 0, 1)
    );
    assert_eq!(
        (r.error.clone(), r.result.clone(), r.event.clone()),
        (None, None, None)
    );
    assert_eq!(r.next_attempt_at, Some(50_000));
    assert_eq!(
        r.expires_at, 60_000,
        "an expired ticket gets a fresh time to live"
    );
    assert!(
        r.delivered,
        "the sweeper must not take it for a failed capture"
    );
    let done = exhausted(&r.claim(50_001, 51_000).unwrap(), 50_002, None).unwrap();
    let again = with_event(done, 50_002);
    let (first, second) = (f.event.unwrap().event_id, again.event.unwrap().event_id);
    assert_ne!(first, second, "receivers would drop the new outcome");
    assert!(second.ends_with("_failed_r1"), "{second}");
}

#[test]
fn rerun_refuses_answers_and_definitive_failures_unless_asked() {
    let all = RetryScope {
        rejected: true,
        cancelled: true,
    };
    let succeeded = queued()
        .claim(2_000, 3_000)
        .unwrap()
        .succeed(
            2_100,
            BackendResult {
                status_code: 200,
                body: Vec::new(),
                content_type: None,
                headers: Vec::new(),
            },
        )
        .unwrap();
    assert!(succeeded.rerun(3_000, 1, "op", all).is_err());
    assert!(queued().rerun(3_000, 1, "op", all).is_err());
    for kind in [ErrorKind::Rejected, ErrorKind::Cancelled] {
        let t = failed(kind);
        let e = t.rerun(3_000, 1, "op", RetryScope::default()).unwrap_err();
        assert!(e.to_string().contains(kind.as_str()), "{e}");
        assert!(t.rerun(3_000, 1, "op", all).is_ok());
    }
    for kind in [ErrorKind::Expired, ErrorKind::Unroutable] {
        assert!(failed(kind)
            .rerun(3_000, 1, "op", RetryScope::default())
            .is_ok());
    }
}
