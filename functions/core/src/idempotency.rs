//! `Idempotency-Key`: the same key and body give the same outcome.
//!
//! The first call inserts an in-flight record (a conditional insert, so two
//! concurrent first calls cannot both run); a second call with the key sees
//! it and answers 409 while it runs, 422 if the body differs, or replays the
//! stored outcome. A record whose lease ran out (its process died) is taken
//! over with a compare-and-set, under the same ticket id: if the dead call
//! had already written its ticket, the retry finds it and finishes that
//! capture instead of creating a second ticket for the same request. A
//! capture that ends in 503 releases the record but keeps its ticket id:
//! nothing was accepted, so the client's retry runs afresh, yet the sync
//! attempt before the 503 may have reached the backend, and the retry must
//! reach it under the same downstream `Idempotency-Key` (the ticket id), or
//! a payment could run twice.

use sha2::{Digest, Sha256};

use crate::ports::{IdemOutcome, IdemRecord, IdempotencyStore, StoreError};
use crate::ticket::TicketId;

/// What the engine does with a keyed request.
#[derive(Debug)]
pub enum Begin {
    /// We own the key: run the request, then [`finish`] or [`release`].
    Run(IdemRecord),
    /// Done before: answer this again.
    Replay(IdemOutcome),
    /// Another call with this key is running.
    InFlight { retry_after_ms: u64 },
    /// The key was used with a different body.
    Mismatch,
}

/// Validates a key: 1-255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

pub fn fingerprint(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The timing of a keyed request: now, its lease and its record's lifetime.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub now: i64,
    pub lease_ms: i64,
    pub ttl_ms: i64,
}

pub async fn begin(
    store: &dyn IdempotencyStore,
    key: &str,
    fingerprint: &str,
    lease: Lease,
    ticket_id: TicketId,
) -> Result<Begin, StoreError> {
    let Lease {
        now,
        lease_ms,
        ttl_ms,
    } = lease;
    let fresh = |version, ticket_id| IdemRecord {
        key: key.to_string(),
        fingerprint: fingerprint.to_string(),
        version,
        outcome: IdemOutcome::InFlight {
            lease_until: now + lease_ms,
            ticket_id,
        },
        expires_at: now + ttl_ms,
    };
    // Two rounds: an insert that loses to a record which then vanishes
    // (released or expired) gets one more try.
    for _ in 0..2 {
        let record = fresh(1, ticket_id);
        match store.insert(&record).await {
            Ok(()) => return Ok(Begin::Run(record)),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        let Some(existing) = store.get(key).await? else {
            continue;
        };
        if existing.fingerprint != fingerprint {
            return Ok(Begin::Mismatch);
        }
        return match existing.outcome {
            IdemOutcome::InFlight { lease_until, .. } if lease_until > now => Ok(Begin::InFlight {
                retry_after_ms: (lease_until - now) as u64,
            }),
            IdemOutcome::InFlight {
                ticket_id: dead, ..
            } => {
                let takeover = fresh(existing.version + 1, dead);
                match store.replace(&takeover, existing.version).await {
                    Ok(()) => Ok(Begin::Run(takeover)),
                    Err(StoreError::Conflict) => Ok(Begin::InFlight {
                        retry_after_ms: lease_ms as u64,
                    }),
                    Err(e) => Err(e),
                }
            }
            done => Ok(Begin::Replay(done)),
        };
    }
    Ok(Begin::InFlight {
        retry_after_ms: 1000,
    })
}

/// The ticket id a keyed request runs under.
pub fn ticket_of(record: &IdemRecord) -> Option<TicketId> {
    match record.outcome {
        IdemOutcome::InFlight { ticket_id, .. } => Some(ticket_id),
        _ => None,
    }
}

/// Stores the outcome of a request that ran.
pub async fn finish(
    store: &dyn IdempotencyStore,
    record: &IdemRecord,
    outcome: IdemOutcome,
) -> Result<(), StoreError> {
    let done = IdemRecord {
        version: record.version + 1,
        outcome,
        ..record.clone()
    };
    store.replace(&done, record.version).await
}

/// Frees the key after a request that was not accepted (503): an in-flight
/// record whose lease has already ended, so the next call with the key
/// takes it over at once, under the same ticket id.
pub async fn release(store: &dyn IdempotencyStore, record: &IdemRecord) -> Result<(), StoreError> {
    let Some(ticket_id) = ticket_of(record) else {
        return Ok(());
    };
    let released = IdemRecord {
        version: record.version + 1,
        outcome: IdemOutcome::InFlight {
            lease_until: 0,
            ticket_id,
        },
        ..record.clone()
    };
    store.replace(&released, record.version).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii() {
        assert!(valid_key("order-123_abc"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key("caf\u{e9}"));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(valid_key(&"k".repeat(255)));
    }
}
