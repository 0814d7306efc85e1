//! Bodies are bytes, on every path.
//!
//! The backend's answer is returned by the sync path, replayed for an
//! `Idempotency-Key` and served by `/tickets/{id}/result`: all three must
//! give the same bytes, whatever they are. In a stored JSON document a body
//! that is UTF-8 text (nearly every API's answer) is kept as a plain string,
//! readable in the store and compatible with documents written before, and
//! anything else as `{"base64": "..."}`. Use with `#[serde(with = "...")]`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored<'a> {
    Text(std::borrow::Cow<'a, str>),
    Binary { base64: String },
}

pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => Stored::Text(text.into()),
        Err(_) => Stored::Binary {
            base64: B64.encode(body),
        },
    }
    .serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    match Stored::deserialize(d)? {
        Stored::Text(text) => Ok(text.into_owned().into_bytes()),
        Stored::Binary { base64 } => B64.decode(base64).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Doc {
        #[serde(with = "super")]
        body: Vec<u8>,
    }

    #[test]
    fn text_stays_readable_and_any_bytes_come_back_exactly() {
        let text = Doc {
            body: br#"{"ok":"caf\u00e9"}"#.to_vec(),
        };
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, r#"{"body":"{\"ok\":\"caf\\u00e9\"}"}"#);
        assert_eq!(serde_json::from_str::<Doc>(&json).unwrap(), text);
        let binary = Doc {
            body: vec![0xff, 0xfe, 0x00, b'a', 0xc3],
        };
        let json = serde_json::to_string(&binary).unwrap();
        assert_eq!(json, r#"{"body":{"base64":"//4AYcM="}}"#);
        assert_eq!(serde_json::from_str::<Doc>(&json).unwrap(), binary);
    }
}
