//! Standard Webhooks signing (<https://www.standardwebhooks.com>).
//!
//! `webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`
//! where the key is the base64 part of `whsec_...`. The tests verify our
//! signatures with the independent `standardwebhooks` crate.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shared secret; its bytes never appear in `Debug` output or logs.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// `whsec_` followed by standard base64 of at least 24 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("must start with whsec_")?;
        let key = B64
            .decode(b64)
            .map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
        if key.len() < 24 {
            return Err("the key must be at least 24 bytes".into());
        }
        Ok(Self { key })
    }

    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// The `whsec_...` text form.
    pub fn to_text(&self) -> String {
        format!("whsec_{}", B64.encode(&self.key))
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        // new_from_slice only fails for key lengths HMAC cannot take; HMAC
        // takes any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

/// The headers of one delivery attempt: the three signed ones, and the
/// delivery span's `traceparent` (not signed: it names no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub traceparent: Option<String>,
}

pub fn signed_headers(
    secret: &WebhookSecret,
    id: &str,
    timestamp_s: i64,
    body: &str,
) -> SignedHeaders {
    SignedHeaders {
        id: id.to_string(),
        timestamp: timestamp_s.to_string(),
        signature: secret.sign(id, timestamp_s, body),
        traceparent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_from_the_spec() {
        // The example of the Standard Webhooks reference implementations.
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
    }
}
