//! The ticket state machine.

use super::*;

fn ticket() -> Ticket {
    let req = CapturedRequest::new("{}", "application/json", "r");
    Ticket::new(TicketId::new(), Reason::Timeout, req, 1_000, 10_000)
}

#[test]
fn every_transition_bumps_the_version() {
    let t = ticket();
    let p = t.claim(2_000, 3_000).unwrap();
    assert_eq!(
        (p.status, p.version, p.attempts),
        (Status::Processing, 2, 1)
    );
    let q = p.retry_at(2_500, 4_000, None).unwrap();
    assert_eq!((q.status, q.version), (Status::Queued, 3));
    let s = q
        .claim(4_000, 5_000)
        .unwrap()
        .succeed(
            4_100,
            BackendResult {
                status_code: 200,
                body: "ok".into(),
                content_type: None,
                headers: Vec::new(),
            },
        )
        .unwrap();
    assert_eq!((s.status, s.version, s.attempts), (Status::Succeeded, 5, 2));
}

#[test]
fn terminal_tickets_do_not_move() {
    let t = ticket().claim(2, 3).unwrap();
    let done = t
        .fail(
            4,
            TicketError {
                kind: ErrorKind::Rejected,
                message: "no".into(),
            },
            None,
        )
        .unwrap();
    assert!(done.claim(5, 6).is_err());
    assert!(done.retry_at(5, 6, None).is_err());
    assert!(ticket()
        .succeed(
            5,
            BackendResult {
                status_code: 200,
                body: Vec::new(),
                content_type: None,
                headers: Vec::new(),
            }
        )
        .is_err());
}

#[test]
fn ids_parse_only_in_canonical_form() {
    let id = TicketId::new();
    assert_eq!(id.to_string().parse::<TicketId>().unwrap(), id);
    assert!("not-a-uuid".parse::<TicketId>().is_err());
    assert!(id.to_string().replace('-', "").parse::<TicketId>().is_err());
}

#[test]
fn postponing_moves_the_due_time_of_a_queued_ticket_only() {
    let t = ticket();
    assert_eq!(t.due_at(), Some(1_000));
    let p = t.postpone(2_000, 9_000).unwrap();
    assert_eq!((p.status, p.version, p.attempts), (Status::Queued, 2, 0));
    assert_eq!(p.due_at(), Some(9_000));
    let claimed = t.claim(2_000, 3_000).unwrap();
    assert!(claimed.postpone(2_000, 9_000).is_err());
}

#[test]
fn a_ticket_nothing_acted_on_is_parked_until_it_expires() {
    // It may be what a failed capture left behind: never run early.
    let t = ticket();
    assert!(!t.delivered);
    let parked = t.park(2_000).unwrap();
    assert_eq!((parked.status, parked.version), (Status::Queued, 2));
    assert_eq!(parked.due_at(), Some(t.expires_at));
    assert!(parked.is_parked() && !t.is_parked());
    let f = t.clone().in_flight(5_000);
    assert_eq!(
        (f.status, f.attempts, f.version),
        (Status::Processing, 1, 1)
    );
    let parked = f.park(9_000).unwrap();
    assert_eq!(parked.due_at(), Some(t.expires_at));
    assert!(parked.is_parked() && !f.is_parked());
    // Any worker action marks it: then it is never parked.
    let p = t.postpone(2_000, 9_000).unwrap();
    assert!(p.delivered);
    assert!(p.park(20_000).is_err());
    assert!(f.claim(6_000, 7_000).unwrap().park(20_000).is_err());
}

#[test]
fn a_swept_ticket_is_due_now() {
    let t = ticket();
    let q = t.swept(5_000).unwrap();
    assert_eq!(
        (q.status, q.version, q.due_at()),
        (Status::Queued, 2, Some(5_000))
    );
    // A processing ticket only once its lease has run out.
    let p = t.claim(2_000, 3_000).unwrap();
    assert!(p.swept(2_500).is_err());
    let p = p.swept(9_000).unwrap();
    assert_eq!((p.status, p.due_at()), (Status::Processing, Some(9_000)));
    let done = p
        .succeed(
            9_100,
            BackendResult {
                status_code: 200,
                body: "ok".into(),
                content_type: None,
                headers: Vec::new(),
            },
        )
        .unwrap();
    assert!(done.swept(10_000).is_err());
}

#[test]
fn a_long_notification_error_is_cut_at_a_character() {
    let done = ticket()
        .claim(1, 10)
        .unwrap()
        .succeed(
            2,
            BackendResult {
                status_code: 200,
                body: b"{}".to_vec(),
                content_type: None,
                headers: Vec::new(),
            },
        )
        .unwrap();
    let event = crate::attempt::pending_event(&done, 3);
    let attempt = |error: String| NotificationAttempt {
        channel: Channel::Webhook,
        attempt: 1,
        at: 3,
        delivered: false,
        status_code: None,
        error: Some(error),
    };
    let long = "é".repeat(1000);
    let kept = done.with_notification(3, attempt(long), event.clone());
    let error = kept.notifications[0].error.clone().unwrap();
    assert!(error.len() <= NOTIFICATION_ERROR_MAX && error.ends_with("..."));
    assert!(error.starts_with("éé"));
    let short = done.with_notification(3, attempt("refused".into()), event);
    assert_eq!(short.notifications[0].error.as_deref(), Some("refused"));
}
