//! Bodies as attributes of their own: stored once, as bytes.
//!
//! Kept inside the `doc` JSON string, a body was escaped (a quote-heavy
//! 200 KiB request became 400 KB, DynamoDB's whole item limit), non-UTF-8
//! bytes grew by a third, and a finished ticket carried its answer twice
//! (result and event). So the item's `doc` is the record with its bodies
//! emptied, and each body is a part: a binary (`B`) attribute `b_<part>`
//! holding the raw bytes when at most [`INLINE_MAX`], or a string
//! attribute holding the S3 claim check's pointer ([`super::blobs`]) when
//! larger. An item is then at most its document plus three inline parts,
//! whatever the bodies' sizes: well inside 400 KB.
//!
//! Items written before parts existed have none, and their `doc` still
//! holds the bodies: they read as before.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use failover_core::ports::{IdemOutcome, IdemRecord, StoreError};
use failover_core::ticket::Ticket;

use super::blobs::S3Blobs;
use super::dynamodb::Item;

/// The largest body kept in the item itself.
pub const INLINE_MAX: usize = 64 * 1024;

/// Bodies taken out of a record, by part name.
pub(super) type Parts = Vec<(&'static str, Vec<u8>)>;

fn attribute(part: &str) -> String {
    format!("b_{part}")
}

/// The ticket without its bodies, and the bodies.
pub(super) fn split_ticket(t: &Ticket) -> (Ticket, Parts) {
    let mut doc = t.clone();
    let mut parts = vec![("req", std::mem::take(&mut doc.request.body))];
    if let Some(r) = doc.result.as_mut() {
        parts.push(("res", std::mem::take(&mut r.body)));
    }
    if let Some(e) = doc.event.as_mut() {
        parts.push(("evt", std::mem::take(&mut e.payload).into_bytes()));
    }
    (doc, parts)
}

/// Puts the bodies read back into the ticket.
pub(super) fn join_ticket(t: &mut Ticket, parts: Parts) -> Result<(), StoreError> {
    for (name, bytes) in parts {
        match name {
            "req" => t.request.body = bytes,
            "res" => {
                if let Some(r) = t.result.as_mut() {
                    r.body = bytes;
                }
            }
            "evt" => {
                if let Some(e) = t.event.as_mut() {
                    e.payload = text(bytes)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn split_record(r: &IdemRecord) -> (IdemRecord, Parts) {
    let mut doc = r.clone();
    let mut parts = Vec::new();
    if let IdemOutcome::Sync { body, .. } = &mut doc.outcome {
        parts.push(("sync", std::mem::take(body)));
    }
    (doc, parts)
}

pub(super) fn join_record(r: &mut IdemRecord, parts: Parts) {
    if let IdemOutcome::Sync { body, .. } = &mut r.outcome {
        if let Some((_, bytes)) = parts.into_iter().find(|(n, _)| *n == "sync") {
            *body = bytes;
        }
    }
}

fn text(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Unavailable("corrupt item: text part".into()))
}

/// Adds the parts to `item` under the item's key `pk`, sending the large
/// ones to S3 first. Empty bodies are left in the document.
pub(super) async fn store(
    item: &mut Item,
    pk: &str,
    parts: Parts,
    blobs: Option<&S3Blobs>,
) -> Result<(), StoreError> {
    for (name, bytes) in parts {
        let value = match blobs {
            _ if bytes.is_empty() => continue,
            Some(blobs) if bytes.len() > INLINE_MAX => {
                AttributeValue::S(blobs.put(pk, name, &bytes).await?)
            }
            _ => AttributeValue::B(Blob::new(bytes)),
        };
        item.insert(attribute(name), value);
    }
    Ok(())
}

/// The parts of `item` named in `names`, fetching those kept in S3.
pub(super) async fn load(
    item: &Item,
    names: &[&'static str],
    blobs: Option<&S3Blobs>,
) -> Result<Parts, StoreError> {
    let mut parts = Vec::new();
    for &name in names {
        let bytes = match item.get(&attribute(name)) {
            None => continue,
            Some(AttributeValue::B(b)) => b.clone().into_inner(),
            Some(AttributeValue::S(pointer)) => match blobs {
                Some(blobs) => blobs.get(pointer).await?,
                None => {
                    return Err(StoreError::Unavailable(
                        "a body is in S3 but no BODY_BUCKET is configured".into(),
                    ))
                }
            },
            Some(_) => return Err(StoreError::Unavailable("corrupt item: body part".into())),
        };
        parts.push((name, bytes));
    }
    Ok(parts)
}

/// Part names of tickets and of idempotency records.
pub(super) const TICKET_PARTS: &[&str] = &["req", "res", "evt"];
pub(super) const RECORD_PARTS: &[&str] = &["sync"];
