use super::*;
use crate::ticket::{CapturedRequest, TicketError, TicketId};

const LONG_BASE: &str = "https://abcdefghij.execute-api.ap-southeast-5.amazonaws.com";

/// Every kind of finished ticket: each reason, each outcome, each lane.
fn finished() -> Vec<Ticket> {
    let mut out = Vec::new();
    let body = br#"{"card":"4111 1111 1111 1111","secret":"s3cr3t"}"#.to_vec();
    for reason in REASONS {
        for kind in KINDS.iter().map(|k| Some(*k)).chain([None]) {
            for lane in Lane::ALL {
                let mut req = CapturedRequest::new(body.clone(), "application/json", "r");
                req.lane = lane;
                let mut t = Ticket::new(TicketId::new(), reason, req, 1_764_614_175_000, 1000);
                t.attempts = u32::MAX;
                t.updated_at = t.created_at + 90_000;
                match kind {
                    None => t.status = Status::Succeeded,
                    Some(kind) => {
                        t.status = Status::Failed;
                        t.error = Some(TicketError {
                            kind,
                            message: "the backend said no to s3cr3t".into(),
                        });
                    }
                }
                out.push(t);
            }
        }
    }
    out
}

/// The first finished ticket that `is`.
fn one(is: impl Fn(&Ticket) -> bool) -> Ticket {
    finished()
        .into_iter()
        .find(|t| is(t))
        .expect("such a ticket")
}

fn failed_as(t: &Ticket, kind: ErrorKind) -> bool {
    t.error.as_ref().is_some_and(|e| e.kind == kind)
}

#[test]
fn the_default_notices_say_what_happened_and_where_to_look() {
    let n = Notices::new(None, None, None, Some("https://api.example.com/")).unwrap();
    let mut t = one(|t| t.status == Status::Succeeded);
    t.reason = Reason::Timeout;
    let notice = n.render(&t);
    let id = t.id.to_string();
    assert_eq!(notice.subject, format!("Request {id} succeeded"));
    assert_eq!(
        notice.sms,
        format!("Request succeeded: https://api.example.com/tickets/{id}")
    );
    assert!(
        notice
            .email
            .starts_with(&format!("Your request {id} succeeded.\n\n")),
        "{}",
        notice.email
    );
    let lines = [
        "\nOutcome: succeeded\n",
        "\nAccepted: 2025-12-01 18:36:15 UTC, queued because the service did not answer in time\n",
        "\nFinished: 2025-12-01 18:37:45 UTC\n",
    ];
    for line in lines {
        assert!(notice.email.contains(line), "{line} in {}", notice.email);
    }
    assert!(notice
        .email
        .contains(&format!("https://api.example.com/tickets/{id}")));
    let failed = one(|t| failed_as(t, ErrorKind::Exhausted));
    let notice = n.render(&failed);
    assert!(
        notice.sms.starts_with("Request failed (exhausted): "),
        "{}",
        notice.sms
    );
    assert!(
        notice.email.contains("could not be completed"),
        "{}",
        notice.email
    );
    assert!(notice.email.contains("\nOutcome: failed (exhausted)\n"));
}

#[test]
fn no_notice_carries_a_body_and_every_sms_fits_one_segment() {
    for base in [None, Some(LONG_BASE)] {
        let n = Notices::new(None, None, None, base).unwrap();
        for t in finished() {
            let notice = n.render(&t);
            for text in [&notice.subject, &notice.email, &notice.sms] {
                assert!(!text.contains("4111") && !text.contains("s3cr3t"), "{text}");
            }
            assert!(
                notice.sms.len() <= SMS_MAX_BYTES,
                "{} bytes: {}",
                notice.sms.len(),
                notice.sms
            );
            assert!(notice.subject.len() <= SUBJECT_MAX);
        }
    }
}

#[test]
fn every_placeholder_renders_and_braces_escape() {
    let all: String = PLACEHOLDERS.iter().map(|p| format!("[{{{p}}}]")).collect();
    let n = Notices::new(None, Some(&format!("{{{{{all}}}}}\\nend")), None, None).unwrap();
    let t = one(|t| {
        failed_as(t, ErrorKind::Rejected)
            && t.reason == Reason::CircuitOpen
            && t.request.lane == Lane::Bulk
    });
    let email = n.render(&t).email;
    let id = t.id;
    assert_eq!(
        email,
        format!(
            "{{[{id}][failed][failed (rejected)][was declined by the service][rejected]\
             [circuit_open][the service was unavailable][2025-12-01 18:36:15 UTC]\
             [2025-12-01 18:37:45 UTC][4294967295][/tickets/{id}][bulk]}}\nend"
        )
    );
}

#[test]
fn bad_templates_stop_start_up_naming_the_variable() {
    let long_sms = "Request {ticket_id} {outcome} at {finished_at}: {status_url}";
    for (subject, email, sms, base, name, says) in [
        (
            None,
            Some("Hi {name}"),
            None,
            None,
            "NOTICE_TEMPLATE_EMAIL",
            "unknown placeholder {name}",
        ),
        (
            None,
            Some("Hi {ticket_id"),
            None,
            None,
            "NOTICE_TEMPLATE_EMAIL",
            "never closed",
        ),
        (
            None,
            Some("Hi }"),
            None,
            None,
            "NOTICE_TEMPLATE_EMAIL",
            "lone",
        ),
        (
            None,
            Some("  "),
            None,
            None,
            "NOTICE_TEMPLATE_EMAIL",
            "empty",
        ),
        (
            None,
            None,
            Some(long_sms),
            None,
            "NOTICE_TEMPLATE_SMS",
            "140 bytes",
        ),
        (
            None,
            None,
            None,
            Some(&format!("{LONG_BASE}/a/longer/path/for/the/api")[..]),
            "NOTICE_TEMPLATE_SMS",
            "PUBLIC_BASE_URL",
        ),
        (
            Some("{status_url} {status_url} {status_url}"),
            None,
            None,
            None,
            "NOTICE_TEMPLATE_SUBJECT",
            "at most 99",
        ),
        (
            Some("Request\\n{status}"),
            None,
            None,
            None,
            "NOTICE_TEMPLATE_SUBJECT",
            "one line",
        ),
        (
            Some("Réponse {status}"),
            None,
            None,
            None,
            "NOTICE_TEMPLATE_SUBJECT",
            "ASCII",
        ),
        (
            Some(" {status}"),
            None,
            None,
            None,
            "NOTICE_TEMPLATE_SUBJECT",
            "begin with",
        ),
        (
            None,
            None,
            None,
            Some("api.example.com"),
            "PUBLIC_BASE_URL",
            "http(s) URL",
        ),
    ] {
        let e = Notices::new(subject, email, sms, base).unwrap_err();
        assert_eq!(e.name, name, "{e:?}");
        assert!(e.problem.contains(says), "{e:?}");
    }
}
