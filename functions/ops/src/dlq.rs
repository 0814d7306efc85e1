//! `failover dlq ...`: the dead letters, and moving them back.

use anyhow::Context;
use failover_core::message::QueueMessage;
use serde_json::json;

use crate::cli::Safety;
use crate::output::{age, table, time};
use crate::stores::Opened;
use crate::{confirm, Report};

pub async fn list(o: &Opened, max: usize, json: bool) -> anyhow::Result<Report> {
    let dead = o
        .dead
        .dead_letters(max)
        .await
        .context("reading the dead letters")?;
    let now = o.clock.now_ms();
    // The ticket it points at, when the body is a message at all.
    let ticket = |body: &str| {
        QueueMessage::parse(body)
            .ok()
            .map(|m| m.ticket_id.to_string())
    };
    let why = |reason: &Option<String>, count: u32| {
        reason
            .clone()
            .unwrap_or_else(|| format!("received {count} times without being finished"))
    };
    if json {
        let rows: Vec<_> = dead
            .iter()
            .map(|d| {
                json!({
                    "message_id": d.message_id,
                    "ticket_id": ticket(&d.body),
                    "lane": d.lane,
                    "reason": why(&d.reason, d.receive_count),
                    "receive_count": d.receive_count,
                    "sent_at": d.sent_at.map(time),
                    "body": d.body,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(Report::Done);
    }
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|d| {
            vec![
                d.message_id.clone(),
                ticket(&d.body).unwrap_or_else(|| "(not a message)".into()),
                d.lane.as_str().into(),
                d.sent_at.map_or(String::new(), |t| age(now - t)),
                why(&d.reason, d.receive_count),
            ]
        })
        .collect();
    let headers = ["MESSAGE", "TICKET", "LANE", "AGE", "WHY"];
    print!("{}", table(&headers, &rows));
    println!("{} dead letter(s)", dead.len());
    Ok(Report::Done)
}

pub async fn redrive(o: &Opened, safety: &Safety, by: &str, json: bool) -> anyhow::Result<Report> {
    let waiting = o
        .dead
        .dead_letters(safety.max)
        .await
        .context("reading the dead letters")?
        .len();
    if safety.dry_run || waiting == 0 {
        match json {
            true => println!("{}", json!({ "dry_run": true, "would_move": waiting })),
            false => println!("{waiting} dead letter(s) would move back to their queues"),
        }
        return Ok(Report::Done);
    }
    let what = format!("move {waiting} dead letter(s) back to their queues");
    if !confirm(&what, waiting, safety)? {
        return Ok(Report::Refused);
    }
    let moved = o.dead.redrive(safety.max).await.context("redriving")?;
    tracing::info!(moved, by, "dead letters redriven");
    match json {
        true => println!("{}", json!({ "dry_run": false, "moved": moved })),
        false => println!("{moved} dead letter(s) moved back to their queues"),
    }
    Ok(Report::Done)
}
