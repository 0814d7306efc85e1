//! Completion notices a person reads: the email and SMS texts published
//! with each terminal event.
//!
//! The topic's JSON event is for programs; an email or SMS subscriber gets
//! these instead (SNS picks the text by protocol). They are made from
//! templates the operator may replace (`NOTICE_TEMPLATE_EMAIL`,
//! `NOTICE_TEMPLATE_SMS`, `NOTICE_TEMPLATE_SUBJECT`), whose placeholders are
//! the ticket's fields ([`PLACEHOLDERS`]). No placeholder gives a request or
//! answer body: those may hold personal or payment data, and an email or a
//! text message is neither private nor erasable.
//!
//! Each template is checked at start against the longest value each
//! placeholder can take, so that an SMS fits one segment (140 bytes) and a
//! subject what SNS takes, for any ticket: a template that could break
//! that stops start-up, not a notice months later.

mod template;

use template::Template;

use crate::lane::Lane;
use crate::ticket::{ErrorKind, Reason, Status, Ticket};

/// The most an SMS notice may take: one segment of 8-bit data.
pub const SMS_MAX_BYTES: usize = 140;
/// SNS takes an email subject of fewer than 100 ASCII characters.
pub const SUBJECT_MAX: usize = 99;

/// The placeholders, in the order of their values.
pub const PLACEHOLDERS: [&str; 12] = [
    "ticket_id",
    "status",
    "result",
    "outcome",
    "error_kind",
    "reason",
    "why",
    "created_at",
    "finished_at",
    "attempts",
    "status_url",
    "lane",
];

pub const DEFAULT_SUBJECT: &str = "Request {ticket_id} {status}";
pub const DEFAULT_EMAIL: &str = "Your request {ticket_id} {outcome}.\n\n\
Outcome: {result}\n\
Accepted: {created_at}, queued because {why}\n\
Finished: {finished_at}\n\n\
Status and result: {status_url}\n";
pub const DEFAULT_SMS: &str = "Request {result}: {status_url}";

/// What a person is told of a finished ticket, per protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub subject: String,
    pub email: String,
    pub sms: String,
}

/// The three templates and the gateway's public address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notices {
    subject: Template,
    email: Template,
    sms: Template,
    /// `PUBLIC_BASE_URL`, without a trailing slash.
    base_url: Option<String>,
}

/// A template that cannot be used, and why (the caller names the variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTemplate {
    pub name: &'static str,
    pub problem: String,
}

const REASONS: [Reason; 7] = [
    Reason::Timeout,
    Reason::BackendError,
    Reason::CircuitOpen,
    Reason::Overloaded,
    Reason::ClientRequested,
    Reason::Forced,
    Reason::Scheduled,
];
const KINDS: [ErrorKind; 5] = [
    ErrorKind::Rejected,
    ErrorKind::Exhausted,
    ErrorKind::Expired,
    ErrorKind::Unroutable,
    ErrorKind::Cancelled,
];

fn why(reason: Reason) -> &'static str {
    match reason {
        Reason::Timeout => "the service did not answer in time",
        Reason::BackendError => "the service answered with an error",
        Reason::CircuitOpen => "the service was unavailable",
        Reason::Overloaded => "the service was busy",
        Reason::ClientRequested => "it was sent to be processed in the background",
        Reason::Forced => "requests were being processed in the background",
        Reason::Scheduled => "it waited for its processing window",
    }
}

fn outcome(kind: Option<ErrorKind>) -> &'static str {
    match kind {
        None => "succeeded",
        Some(ErrorKind::Rejected) => "was declined by the service",
        Some(ErrorKind::Exhausted) => "could not be completed",
        Some(ErrorKind::Expired) => "expired before it could be processed",
        Some(ErrorKind::Unroutable) => "could not be processed",
        Some(ErrorKind::Cancelled) => "was cancelled",
    }
}

fn result(kind: Option<ErrorKind>) -> String {
    match kind {
        None => "succeeded".into(),
        Some(k) => format!("failed ({})", k.as_str()),
    }
}

/// `2026-12-01 18:56:15 UTC`.
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

impl Default for Notices {
    fn default() -> Self {
        let parse = |t| Template::parse(t, &PLACEHOLDERS).unwrap_or(Template(Vec::new()));
        Self {
            subject: parse(DEFAULT_SUBJECT),
            email: parse(DEFAULT_EMAIL),
            sms: parse(DEFAULT_SMS),
            base_url: None,
        }
    }
}

impl Notices {
    /// The templates given (`None`: the default), checked, with the
    /// gateway's public address (`PUBLIC_BASE_URL`).
    pub fn new(
        subject: Option<&str>,
        email: Option<&str>,
        sms: Option<&str>,
        base_url: Option<&str>,
    ) -> Result<Self, BadTemplate> {
        let base_url = match base_url.map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                    Some(u.trim_end_matches('/').to_string())
                }
                _ => {
                    return Err(BadTemplate {
                        name: "PUBLIC_BASE_URL",
                        problem: "must be an http(s) URL such as https://api.example.com".into(),
                    })
                }
            },
        };
        // `\n` in a variable's value is a line break (an email template
        // is written on one line in a shell or a stack parameter).
        let parse = |name: &'static str, text: Option<&str>, default: &str| {
            let text = text.map_or_else(|| default.to_string(), |t| t.replace("\\n", "\n"));
            Template::parse(&text, &PLACEHOLDERS).map_err(|problem| BadTemplate { name, problem })
        };
        let notices = Self {
            subject: parse("NOTICE_TEMPLATE_SUBJECT", subject, DEFAULT_SUBJECT)?,
            email: parse("NOTICE_TEMPLATE_EMAIL", email, DEFAULT_EMAIL)?,
            sms: parse("NOTICE_TEMPLATE_SMS", sms, DEFAULT_SMS)?,
            base_url,
        };
        notices.check()?;
        Ok(notices)
    }

    /// The longest value of each placeholder.
    fn longest(&self) -> Vec<usize> {
        let max = |it: &mut dyn Iterator<Item = usize>| it.max().unwrap_or(0);
        let kinds = || KINDS.iter().map(|k| Some(*k)).chain([None]);
        let url = self.base_url.as_ref().map_or(0, String::len) + "/tickets/".len() + 36;
        PLACEHOLDERS
            .iter()
            .map(|p| match *p {
                "ticket_id" => 36,
                "status" => "succeeded".len(),
                "result" => max(&mut kinds().map(|k| result(k).len())),
                "outcome" => max(&mut kinds().map(|k| outcome(k).len())),
                "error_kind" => max(&mut KINDS.iter().map(|k| k.as_str().len())),
                "reason" => max(&mut REASONS.iter().map(|r| r.as_str().len())),
                "why" => max(&mut REASONS.iter().map(|r| why(*r).len())),
                "created_at" | "finished_at" => when(0).len(),
                "attempts" => u32::MAX.to_string().len(),
                "status_url" => url,
                "lane" => max(&mut Lane::ALL.iter().map(|l| l.as_str().len())),
                _ => 0,
            })
            .collect()
    }

    fn check(&self) -> Result<(), BadTemplate> {
        let longest = self.longest();
        let sms = self.sms.max_len(&longest);
        if sms > SMS_MAX_BYTES {
            return Err(BadTemplate {
                name: "NOTICE_TEMPLATE_SMS",
                problem: format!(
                    "can be {sms} bytes long with the longest values (the status URL with \
                     PUBLIC_BASE_URL among them); an SMS notice must fit one segment, \
                     {SMS_MAX_BYTES} bytes"
                ),
            });
        }
        let subject = self.subject.max_len(&longest);
        let sample = self
            .subject
            .render(&vec!["x".to_string(); PLACEHOLDERS.len()]);
        let problem = if subject > SUBJECT_MAX {
            Some(format!(
                "can be {subject} characters long; SNS takes at most {SUBJECT_MAX}"
            ))
        } else if !sample
            .chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control())
        {
            Some("must be ASCII, on one line (SNS refuses anything else)".into())
        } else if !sample
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
        {
            Some("must begin with a letter, a digit or punctuation".into())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(BadTemplate {
                name: "NOTICE_TEMPLATE_SUBJECT",
                problem,
            }),
            None => Ok(()),
        }
    }

    /// The notice of `t`, a finished ticket.
    pub fn render(&self, t: &Ticket) -> Notice {
        let kind = match t.status {
            Status::Succeeded => None,
            _ => Some(t.error.as_ref().map_or(ErrorKind::Exhausted, |e| e.kind)),
        };
        let base = self.base_url.as_deref().unwrap_or("");
        let values: Vec<String> = PLACEHOLDERS
            .iter()
            .map(|p| match *p {
                "ticket_id" => t.id.to_string(),
                "status" => t.status.as_str().to_string(),
                "result" => result(kind),
                "outcome" => outcome(kind).to_string(),
                "error_kind" => kind.map_or("", ErrorKind::as_str).to_string(),
                "reason" => t.reason.as_str().to_string(),
                "why" => why(t.reason).to_string(),
                "created_at" => when(t.created_at),
                "finished_at" => when(t.updated_at),
                "attempts" => t.attempts.to_string(),
                "status_url" => format!("{base}/tickets/{}", t.id),
                "lane" => t.request.lane.as_str().to_string(),
                _ => String::new(),
            })
            .collect();
        Notice {
            subject: self.subject.render(&values),
            email: self.email.render(&values),
            sms: self.sms.render(&values),
        }
    }
}

#[cfg(test)]
mod tests;
