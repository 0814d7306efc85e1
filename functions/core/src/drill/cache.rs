//! Each instance's copy of the drills, refreshed in the background.
//!
//! A request never waits for the store: it reads the copy, and if the copy
//! is older than the health-cache period it starts one refresh (at most
//! one at a time) whose result the next requests see. An unreachable
//! store keeps the last copy, so a drill in progress is not dropped by a
//! store hiccup, and it still ends at its `until`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Drill, DrillStore};

#[derive(Default)]
struct Copy {
    drills: Vec<Drill>,
    fetched: Option<Instant>,
    refreshing: bool,
}

pub struct DrillCache {
    store: Arc<dyn DrillStore>,
    period: Duration,
    copy: Arc<Mutex<Copy>>,
}

impl DrillCache {
    pub fn new(store: Arc<dyn DrillStore>, period: Duration) -> Self {
        Self {
            store,
            period,
            copy: Arc::default(),
        }
    }

    /// The drills as last read (a refresh starts if that is too long ago).
    pub fn current(&self) -> Vec<Drill> {
        let mut copy = self.copy.lock().unwrap_or_else(|e| e.into_inner());
        let stale = copy.fetched.is_none_or(|at| at.elapsed() >= self.period);
        if stale && !copy.refreshing {
            copy.refreshing = true;
            let (store, shared) = (self.store.clone(), self.copy.clone());
            tokio::spawn(async move {
                let read = store.drills().await;
                let mut copy = shared.lock().unwrap_or_else(|e| e.into_inner());
                copy.refreshing = false;
                match read {
                    Ok(drills) => {
                        if drills != copy.drills {
                            tracing::info!(drills = ?drills, "drills changed");
                        }
                        copy.drills = drills;
                        copy.fetched = Some(Instant::now());
                    }
                    Err(e) => {
                        // Tried again next period, not on every request.
                        tracing::warn!(error = %e, "drills unreadable: keeping the last copy");
                        copy.fetched = Some(Instant::now());
                    }
                }
            });
        }
        copy.drills.clone()
    }
}
