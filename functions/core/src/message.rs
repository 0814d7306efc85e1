//! The queue message: only a pointer to the ticket.
//!
//! The ticket in the store is the source of truth (body, attempts, status),
//! so a message carries just the id and a format version. Anything that does
//! not parse as this is poison and goes to the dead-letter queue.

use serde::{Deserialize, Serialize};

use crate::ticket::TicketId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueMessage {
    pub v: u8,
    pub ticket_id: TicketId,
}

impl QueueMessage {
    pub fn new(ticket_id: TicketId) -> Self {
        Self { v: 1, ticket_id }
    }

    pub fn to_body(&self) -> String {
        // A struct of a number and a UUID always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(body: &str) -> Result<Self, String> {
        let m: QueueMessage = serde_json::from_str(body).map_err(|e| e.to_string())?;
        if m.v != 1 {
            return Err(format!("unknown message version {}", m.v));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_poison() {
        let m = QueueMessage::new(TicketId::new());
        assert_eq!(QueueMessage::parse(&m.to_body()).unwrap(), m);
        assert!(QueueMessage::parse("garbage").is_err());
        assert!(QueueMessage::parse(
            r#"{"v":2,"ticket_id":"0190a5b2-7c3e-7d4a-9b1f-2c3d4e5f6a7b"}"#
        )
        .is_err());
        assert!(QueueMessage::parse(r#"{"v":1,"ticket_id":"nope"}"#).is_err());
    }
}
