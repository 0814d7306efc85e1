//! Drills: a runtime override of the failover mode, for rehearsing a
//! failover (or holding one off) without a redeploy.
//!
//! `FORCE_MODE` is the static setting, read at start. A drill is started
//! by the operator's tool, written to a [`DrillStore`] every instance
//! reads (the SQLite file locally, the table on AWS), and obeyed by the
//! whole fleet within one health-cache period ([`DrillCache`]). It names
//! its mode (`async`: every request is captured, reason `forced`; `sync`:
//! the breaker's verdict is ignored and every request is tried), its scope
//! (everything, one breaker group, or one route; the most specific one
//! applies), who started it and until when: it ends by itself.

mod cache;

pub use cache::DrillCache;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::ForceMode;
use crate::ports::StoreError;

/// What a drill covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Scope {
    All,
    Group(String),
    Route(String),
}

impl Scope {
    /// How specific it is: a route's drill beats its group's, which beats
    /// one for everything.
    fn rank(&self) -> u8 {
        match self {
            Scope::All => 0,
            Scope::Group(_) => 1,
            Scope::Route(_) => 2,
        }
    }

    pub fn covers(&self, route: &str, group: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Group(g) => g == group,
            Scope::Route(r) => r == route,
        }
    }

    /// `all`, `group:<name>`, `route:<name>`.
    pub fn key(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Group(g) => format!("group:{g}"),
            Scope::Route(r) => format!("route:{r}"),
        }
    }
}

/// One drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    /// `async` or `sync` (never `auto`: stopping the drill is that).
    #[serde(with = "mode")]
    pub mode: ForceMode,
    pub scope: Scope,
    pub started_ms: i64,
    /// It ends by itself then (epoch ms).
    pub until_ms: i64,
    pub by: String,
}

impl Drill {
    pub fn active(&self, now_ms: i64) -> bool {
        self.started_ms <= now_ms && now_ms < self.until_ms
    }
}

/// The drill that applies to a route now, if any: the most specific
/// active one.
pub fn applying<'a>(
    drills: &'a [Drill],
    route: &str,
    group: &str,
    now_ms: i64,
) -> Option<&'a Drill> {
    drills
        .iter()
        .filter(|d| d.active(now_ms) && d.scope.covers(route, group))
        .max_by_key(|d| d.scope.rank())
}

mod mode {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::ForceMode;

    pub fn serialize<S: Serializer>(m: &ForceMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ForceMode, D::Error> {
        match String::deserialize(d)?.as_str() {
            "async" => Ok(ForceMode::Async),
            "sync" => Ok(ForceMode::Sync),
            other => Err(serde::de::Error::custom(format!("drill mode {other:?}"))),
        }
    }
}

/// Where drills are kept: every instance reads them, the tool writes them.
#[async_trait]
pub trait DrillStore: Send + Sync {
    /// Every drill stored (ended ones may linger: readers check
    /// [`Drill::active`]).
    async fn drills(&self) -> Result<Vec<Drill>, StoreError>;
    /// Starts `drill`, replacing any of the same scope.
    async fn start(&self, drill: &Drill) -> Result<(), StoreError>;
    /// Ends the drill of `scope`, or every drill; how many were stored.
    async fn stop(&self, scope: Option<&Scope>) -> Result<usize, StoreError>;
}

/// The stored set after starting `drill`: it replaces one of its scope,
/// and drills that ended are dropped (a read-modify-write helper for
/// stores that keep the set as one document).
pub fn with_started(mut set: Vec<Drill>, drill: &Drill, now_ms: i64) -> Vec<Drill> {
    set.retain(|d| d.scope != drill.scope && d.until_ms > now_ms);
    set.push(drill.clone());
    set
}

/// The stored set after stopping `scope` (every drill for `None`), and how
/// many were removed.
pub fn with_stopped(mut set: Vec<Drill>, scope: Option<&Scope>) -> (Vec<Drill>, usize) {
    let before = set.len();
    set.retain(|d| scope.is_some_and(|s| d.scope != *s));
    let gone = before - set.len();
    (set, gone)
}

#[cfg(test)]
mod tests;
