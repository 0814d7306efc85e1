//! A Server-Sent Events reader for the tests: one block (event or comment)
//! at a time, as a browser's `EventSource` would parse it.

use std::time::Duration;

/// One block of the stream: an event, or a comment (`: heartbeat`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseBlock {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
}

impl SseBlock {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next block; `None` once the server ended the stream. Panics if
    /// nothing complete arrives within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<SseBlock> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout_at(until, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {limit:?}; have {:?}", self.buf))
                .expect("stream readable");
            match chunk {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => {
                    assert!(self.buf.trim().is_empty(), "cut mid-event: {:?}", self.buf);
                    return None;
                }
            }
        }
    }

    /// The next event, skipping comments.
    pub async fn event(&mut self, limit: Duration) -> Option<SseBlock> {
        loop {
            match self.next(limit).await {
                Some(b) if b.comment.is_some() && b.event.is_none() && b.data.is_empty() => {}
                other => return other,
            }
        }
    }
}

fn parse(block: &str) -> SseBlock {
    let mut b = SseBlock::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(':') {
            b.comment = Some(c.trim().to_string());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => b.id = Some(value.to_string()),
            "event" => b.event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    b.data = data.join("\n");
    b
}
