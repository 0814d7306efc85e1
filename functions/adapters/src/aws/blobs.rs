//! The claim check: bodies too large for a DynamoDB item, kept in S3.
//!
//! An item holds at most 400 KB, and a request body, the backend's answer
//! and the event that carries it can each be larger. Such a body is written
//! to the body bucket and the item keeps a pointer in the SQS Extended
//! Client's format, `["software.amazon.payloadoffloading.PayloadS3Pointer",
//! {"s3BucketName": ..., "s3Key": ...}]`, which tools that know the
//! convention can follow.
//!
//! Keys are content-addressed under the item (`bodies/<item>/<part>-<sha-256>`):
//! writing the same body again is idempotent, and an object, once there,
//! never changes, so a pointer is never left aiming at bytes another write
//! replaced. The object is written before the item that points at it; a
//! crash or a lost race in between leaves an orphan, which the bucket's
//! lifecycle rule deletes after the longest a ticket is kept, never a
//! pointer to nothing.

use std::collections::HashSet;
use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use failover_core::ports::StoreError;

use super::unavailable;

const POINTER_CLASS: &str = "software.amazon.payloadoffloading.PayloadS3Pointer";
/// Keys remembered as written (or read): a worker rewrites a ticket several
/// times with the same bodies, and need not upload them again each time.
const REMEMBERED: usize = 4096;

pub struct S3Blobs {
    client: Client,
    bucket: String,
    known: Mutex<HashSet<String>>,
}

/// SHA-256, hex (the same digest that fingerprints idempotent requests).
fn hex(bytes: &[u8]) -> String {
    failover_core::idempotency::fingerprint(bytes)
}

impl S3Blobs {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            known: Mutex::new(HashSet::new()),
        }
    }

    /// The S3 client for `sdk`: path-style addressing when the endpoint is
    /// an emulator's (a loopback address has no bucket subdomains).
    pub fn client(sdk: &aws_config::SdkConfig) -> Client {
        let custom = std::env::var_os("AWS_ENDPOINT_URL_S3")
            .or_else(|| std::env::var_os("AWS_ENDPOINT_URL"))
            .is_some();
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom)
            .build();
        Client::from_conf(conf)
    }

    fn key(item: &str, part: &str, bytes: &[u8]) -> String {
        format!(
            "bodies/{}/{part}-{}",
            &hex(item.as_bytes())[..32],
            hex(bytes)
        )
    }

    fn remember(&self, key: &str) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= REMEMBERED {
                known.clear();
            }
            known.insert(key.to_string());
        }
    }

    fn is_known(&self, key: &str) -> bool {
        self.known.lock().is_ok_and(|k| k.contains(key))
    }

    /// Stores `bytes` as `part` of `item`; returns the pointer to keep.
    pub async fn put(&self, item: &str, part: &str, bytes: &[u8]) -> Result<String, StoreError> {
        let key = Self::key(item, part, bytes);
        if !self.is_known(&key) {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map_err(unavailable)?;
            self.remember(&key);
        }
        Ok(
            serde_json::json!([POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": key}])
                .to_string(),
        )
    }

    /// The bytes a pointer refers to.
    pub async fn get(&self, pointer: &str) -> Result<Vec<u8>, StoreError> {
        let (bucket, key) = parse_pointer(pointer)
            .ok_or_else(|| StoreError::Unavailable(format!("not a body pointer: {pointer}")))?;
        let out = self
            .client
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(unavailable)?;
        let bytes = out.body.collect().await.map_err(unavailable)?.to_vec();
        self.remember(&key);
        Ok(bytes)
    }
}

fn parse_pointer(pointer: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(pointer).ok()?;
    if v.get(0)?.as_str()? != POINTER_CLASS {
        return None;
    }
    let at = v.get(1)?;
    Some((
        at.get("s3BucketName")?.as_str()?.to_string(),
        at.get("s3Key")?.as_str()?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_depend_on_the_item_the_part_and_the_bytes() {
        let k = super::S3Blobs::key("T#a", "req", b"x");
        assert!(k.starts_with("bodies/") && k.contains("/req-"), "{k}");
        assert_eq!(k, super::S3Blobs::key("T#a", "req", b"x"));
        assert_ne!(k, super::S3Blobs::key("T#b", "req", b"x"));
        assert_ne!(k, super::S3Blobs::key("T#a", "res", b"x"));
        assert_ne!(k, super::S3Blobs::key("T#a", "req", b"y"));
        let pointer = format!(
            r#"["{}",{{"s3BucketName":"b","s3Key":"{k}"}}]"#,
            super::POINTER_CLASS
        );
        assert_eq!(
            super::parse_pointer(&pointer),
            Some(("b".to_string(), k.clone()))
        );
        assert_eq!(super::parse_pointer(r#"["other",{}]"#), None);
    }
}
