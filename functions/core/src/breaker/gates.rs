//! One breaker per group of routes.
//!
//! Why: a slow CRM behind `GET /orders/{id}` must not send payments to the
//! queue. Each route names a breaker group (by default its backend's
//! origin), and each group has its own [`HealthGate`], built with the
//! policy of the group's first route. Calls count in, and are judged by,
//! their route's group only.

use std::sync::Arc;

use super::HealthGate;
use crate::config::Policy;
use crate::route::RouteTable;

pub struct HealthGates {
    gates: Vec<(String, Arc<dyn HealthGate>)>,
}

impl HealthGates {
    /// A gate for each group of `routes`, from `make(group, policy)`.
    pub fn new(routes: &RouteTable, make: impl Fn(&str, &Policy) -> Arc<dyn HealthGate>) -> Self {
        let mut gates: Vec<_> = routes
            .groups()
            .into_iter()
            .map(|(group, policy)| (group.to_string(), make(group, policy)))
            .collect();
        if gates.is_empty() {
            gates.push((String::new(), make("", &Policy::default())));
        }
        Self { gates }
    }

    /// One gate for every group (tests of a single backend).
    pub fn single(gate: Arc<dyn HealthGate>) -> Self {
        Self {
            gates: vec![(String::new(), gate)],
        }
    }

    /// The gate of `group` (an unknown group, as from a route removed since
    /// its ticket was taken, shares the first group's).
    pub fn gate(&self, group: &str) -> &Arc<dyn HealthGate> {
        // Never empty: `new` and `single` make at least one.
        let found = self.gates.iter().find(|(g, _)| g == group);
        &found.unwrap_or(&self.gates[0]).1
    }

    /// Every group and its gate, in the routes' order.
    pub fn all(&self) -> &[(String, Arc<dyn HealthGate>)] {
        &self.gates
    }
}
