//! `failover tickets ...`: list, show, cancel, retry.

use anyhow::Context;
use failover_core::operator::{self, Done, Refused, RetryScope};
use failover_core::ticket::{Status, Ticket, TicketId};
use serde_json::{json, Value};

use crate::cli::{Filters, Safety};
use crate::output::{age, parse_age, parse_since, table, time};
use crate::stores::Opened;
use crate::{confirm, Report, Usage};

/// Scan pages this large.
const PAGE: usize = 500;

/// Every stored ticket that `keep` keeps.
async fn matching(o: &Opened, keep: impl Fn(&Ticket) -> bool) -> anyhow::Result<Vec<Ticket>> {
    let (mut out, mut cursor) = (Vec::new(), None);
    loop {
        let page = o
            .scan
            .scan(cursor, PAGE)
            .await
            .context("reading the tickets")?;
        out.extend(page.tickets.into_iter().filter(|t| keep(t)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

fn kind(t: &Ticket) -> &'static str {
    t.error.as_ref().map_or("", |e| e.kind.as_str())
}

fn summary(t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "status": t.status,
        "error_kind": t.error.as_ref().map(|e| e.kind),
        "reason": t.reason,
        "lane": t.request.lane,
        "route": t.request.route,
        "attempts": t.attempts,
        "runs": t.runs,
        "created_at": time(t.created_at),
        "updated_at": time(t.updated_at),
    })
}

pub async fn list(o: &Opened, f: &Filters, json: bool) -> anyhow::Result<Report> {
    let now = o.clock.now_ms();
    let older = f.older_than.as_deref().map(parse_age).transpose()?;
    let newer = f.newer_than.as_deref().map(parse_age).transpose()?;
    let status = f.status.as_deref().map(str::parse::<Status>).transpose();
    let status = status.map_err(Usage)?;
    let keep = |t: &Ticket| {
        let text = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        status.is_none_or(|s| t.status == s)
            && text(&f.reason, t.reason.as_str())
            && text(&f.lane, t.request.lane.as_str())
            && text(&f.route, &t.request.route)
            && text(&f.kind, kind(t))
            && older.is_none_or(|o| now - t.created_at >= o)
            && newer.is_none_or(|n| now - t.created_at <= n)
    };
    let mut found = matching(o, keep).await?;
    found.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    found.truncate(f.max);
    if json {
        println!("{}", Value::Array(found.iter().map(summary).collect()));
    } else {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.status.as_str().into(),
                    kind(t).into(),
                    t.reason.as_str().into(),
                    t.request.lane.as_str().into(),
                    t.request.route.clone(),
                    t.attempts.to_string(),
                    age(now - t.created_at),
                ]
            })
            .collect();
        let headers = [
            "ID", "STATUS", "KIND", "REASON", "LANE", "ROUTE", "ATTEMPTS", "AGE",
        ];
        print!("{}", table(&headers, &rows));
        println!("{} ticket(s)", found.len());
    }
    Ok(Report::Done)
}

fn parse_id(raw: &str) -> Result<TicketId, String> {
    raw.parse().map_err(|e| format!("{raw:?}: {e}"))
}

pub async fn show(o: &Opened, raw: &str, json: bool) -> anyhow::Result<Report> {
    let id = parse_id(raw).map_err(Usage)?;
    let Some(t) = o.tickets.get(&id).await.context("reading the ticket")? else {
        eprintln!("no ticket {id}");
        return Ok(Report::Refused);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(Report::Done);
    }
    let mut out = vec![
        ("id", t.id.to_string()),
        ("status", t.status.as_str().to_string()),
        ("reason", t.reason.as_str().to_string()),
        ("route", t.request.route.clone()),
        ("lane", t.request.lane.as_str().to_string()),
        (
            "attempts",
            format!("{} (runs after a retry: {})", t.attempts, t.runs),
        ),
        ("created", time(t.created_at)),
        ("updated", time(t.updated_at)),
        ("expires", time(t.expires_at)),
    ];
    if let Some(at) = t.next_attempt_at {
        out.push(("next attempt", time(at)));
    }
    if let Some(e) = &t.error {
        out.push(("error", format!("{}: {}", e.kind.as_str(), e.message)));
    }
    if let Some(r) = &t.result {
        out.push((
            "backend answered",
            format!("{} ({} bytes)", r.status_code, r.body.len()),
        ));
    }
    for n in &t.notifications {
        let how = match (n.delivered, n.status_code, &n.error) {
            (true, _, _) => "delivered".to_string(),
            (false, Some(code), _) => format!("answered {code}"),
            (false, None, Some(e)) => e.clone(),
            (false, None, None) => "failed".to_string(),
        };
        let what = format!(
            "{} #{} at {}: {how}",
            n.channel.as_str(),
            n.attempt,
            time(n.at)
        );
        out.push(("notification", what));
    }
    for a in &t.actions {
        out.push((
            "action",
            format!("{} by {} at {}", a.what.as_str(), a.by, time(a.at)),
        ));
    }
    for (k, v) in out {
        println!("{k:<17}{v}");
    }
    Ok(Report::Done)
}

/// What one action did to one ticket.
fn result(id: &str, outcome: Result<(&str, Option<&Done>), String>) -> Value {
    match outcome {
        Ok((what, done)) => json!({
            "id": id,
            "ok": true,
            "outcome": what,
            "status": done.map(|d| d.ticket.status),
            "enqueued": done.map(|d| d.enqueued),
        }),
        Err(why) => json!({ "id": id, "ok": false, "outcome": "refused", "detail": why }),
    }
}

/// An action's words: to do, done, would be done.
struct Verb(&'static str, &'static str, &'static str);

/// Runs `act` on each id (or says what it would do), printing each result.
async fn each<F, Fut>(
    ids: &[String],
    verb: Verb,
    safety: &Safety,
    json: bool,
    act: F,
) -> anyhow::Result<Report>
where
    F: Fn(TicketId, bool) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Done>, Refused>>,
{
    let Verb(doing, done_word, would) = verb;
    let ids = &ids[..ids.len().min(safety.max)];
    if !safety.dry_run
        && !confirm(
            &format!("{doing} {} ticket(s)", ids.len()),
            ids.len(),
            safety,
        )?
    {
        return Ok(Report::Refused);
    }
    let (mut results, mut refused) = (Vec::new(), false);
    for raw in ids {
        let outcome = match parse_id(raw) {
            Err(e) => Err(e),
            Ok(id) => match act(id, safety.dry_run).await {
                Ok(done) => Ok(done),
                Err(e) => Err(e.to_string()),
            },
        };
        let word = if safety.dry_run { would } else { done_word };
        let value = result(
            raw,
            outcome
                .as_ref()
                .map(|d| (word, d.as_ref()))
                .map_err(Clone::clone),
        );
        refused |= outcome.is_err();
        match (&outcome, json) {
            (_, true) => {}
            (Ok(Some(d)), false) if !d.enqueued => {
                println!("{raw}  {word} (its message was not sent: the sweeper will re-enqueue it)")
            }
            (Ok(_), false) => println!("{raw}  {word}"),
            (Err(e), false) => println!("{raw}  refused: {e}"),
        }
        results.push(value);
    }
    if json {
        println!(
            "{}",
            json!({ "dry_run": safety.dry_run, "results": results })
        );
    }
    Ok(if refused {
        Report::Refused
    } else {
        Report::Done
    })
}

pub async fn cancel(
    o: &Opened,
    ids: &[String],
    by: &str,
    safety: &Safety,
    json: bool,
) -> anyhow::Result<Report> {
    each(
        ids,
        Verb("cancel", "cancelled", "would be cancelled"),
        safety,
        json,
        |id, dry| async move {
            if dry {
                let t = o.tickets.get(&id).await.map_err(Refused::Store)?;
                let t = t.ok_or(Refused::NotFound(id))?;
                return t.cancel(o.clock.now_ms(), by).map(|_| None);
            }
            operator::cancel(o.stores(), &id, by).await.map(Some)
        },
    )
    .await
}

pub struct RetryArgs<'a> {
    pub ids: &'a [String],
    pub failed_since: Option<&'a str>,
    pub scope: RetryScope,
}

pub async fn retry(
    o: &Opened,
    args: RetryArgs<'_>,
    by: &str,
    safety: &Safety,
    json: bool,
) -> anyhow::Result<Report> {
    let ids: Vec<String> = match args.failed_since {
        None if args.ids.is_empty() => {
            return Err(Usage("name tickets, or give --failed-since".into()).into())
        }
        None => args.ids.to_vec(),
        Some(raw) => {
            let since = parse_since(raw, o.clock.now_ms())?;
            let now = o.clock.now_ms();
            let keep = |t: &Ticket| {
                t.status == Status::Failed
                    && t.updated_at >= since
                    && t.rerun(now, o.ttl_ms(), by, args.scope).is_ok()
            };
            let mut found = matching(o, keep).await?;
            found.sort_by_key(|t| t.updated_at);
            found.iter().map(|t| t.id.to_string()).collect()
        }
    };
    let (ttl, scope) = (o.ttl_ms(), args.scope);
    let verb = Verb("retry", "queued again", "would be queued again");
    each(&ids, verb, safety, json, |id, dry| async move {
        if dry {
            let t = o.tickets.get(&id).await.map_err(Refused::Store)?;
            let t = t.ok_or(Refused::NotFound(id))?;
            return t.rerun(o.clock.now_ms(), ttl, by, scope).map(|_| None);
        }
        operator::retry(o.stores(), &id, by, ttl, scope)
            .await
            .map(Some)
    })
    .await
}
