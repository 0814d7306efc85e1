//! The demo backend's answers by idempotency key, within a budget.
//!
//! A real payment API keeps its idempotency records for a day or so; the
//! demo keeps the most recent ones that fit in [`BUDGET_BYTES`] (answers
//! embed the request, up to `MAX_BODY_BYTES` each), dropping the oldest
//! first, so a long-running demo cannot grow without bound.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

/// Bytes of answers kept at most.
pub const BUDGET_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub struct Answers {
    by_key: HashMap<String, Value>,
    /// Keys oldest first, with the size each was counted at.
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl Answers {
    pub fn get(&self, key: &str) -> Option<Value> {
        self.by_key.get(key).cloned()
    }

    pub fn insert(&mut self, key: String, answer: Value) {
        let size = key.len() + answer.to_string().len();
        if self.by_key.contains_key(&key) || size > BUDGET_BYTES {
            return;
        }
        while self.bytes + size > BUDGET_BYTES {
            let Some((old, n)) = self.order.pop_front() else {
                break;
            };
            self.by_key.remove(&old);
            self.bytes -= n;
        }
        self.by_key.insert(key.clone(), answer);
        self.order.push_back((key, size));
        self.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_answers_go_first_and_the_budget_holds() {
        let mut a = Answers::default();
        let big = Value::String("x".repeat(BUDGET_BYTES / 4));
        for i in 0..10 {
            a.insert(format!("k{i}"), big.clone());
            assert!(a.bytes <= BUDGET_BYTES);
        }
        assert!(a.get("k0").is_none(), "the oldest went");
        assert!(a.get("k9").is_some(), "the newest stays");
        // The same key keeps its first answer.
        a.insert("k9".into(), Value::Null);
        assert_eq!(a.get("k9"), Some(big));
    }
}
