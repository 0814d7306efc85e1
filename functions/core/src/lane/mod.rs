//! Priority lanes: after an outage the backlog drains by business rule,
//! not in arrival order, and some work waits for off-peak windows.
//!
//! Every captured request goes to one of three lanes, `critical`, `normal`
//! (the default) and `bulk`, chosen by the operator's `PRIORITY_RULES` on
//! its JSON body ([`rules`]). The worker serves a lane only while no higher
//! lane has work waiting; a ticket that has waited `LANE_AGEING_S` moves up
//! one lane for that purpose (two for `bulk` after twice as long), so a
//! lower lane is never starved for ever. A lane with `LANE_WINDOWS`
//! ([`window`]) is processed only inside them, even when the backend is
//! healthy: its requests are queued at once (reason `scheduled`) and wait
//! for the window; its age counts from the window's opening.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod rules;
pub mod window;

use rules::Rule;
use window::Window;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Critical,
    #[default]
    Normal,
    Bulk,
}

impl Lane {
    /// Highest first.
    pub const ALL: [Lane; 3] = [Lane::Critical, Lane::Normal, Lane::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Critical => "critical",
            Lane::Normal => "normal",
            Lane::Bulk => "bulk",
        }
    }

    pub fn parse(name: &str) -> Result<Lane, String> {
        Lane::ALL
            .into_iter()
            .find(|l| l.as_str() == name)
            .ok_or_else(|| format!("lane {name:?}: one of critical, normal, bulk"))
    }

    /// 0 for `critical`, 2 for `bulk`.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// The request header a client may name its lane in, where the operator
/// allows it (`ALLOW_CLIENT_LANE`).
pub const LANE_HEADER: &str = "failover-lane";

/// The operator's lane configuration.
#[derive(Debug, Clone)]
pub struct Lanes {
    rules: Vec<Rule>,
    windows: [Vec<Window>; 3],
    /// `LANE_AGEING_S`.
    pub ageing: Duration,
    /// `ALLOW_CLIENT_LANE`: the `Failover-Lane` header is honoured.
    pub client_choice: bool,
}

impl Default for Lanes {
    /// No rules, no windows, five minutes of ageing.
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            windows: Default::default(),
            ageing: Duration::from_secs(300),
            client_choice: false,
        }
    }
}

impl Lanes {
    /// Replaces the rules with `PRIORITY_RULES`.
    pub fn set_rules(&mut self, text: &str) -> Result<(), String> {
        self.rules = rules::parse(text)?;
        Ok(())
    }

    /// Replaces the windows with `LANE_WINDOWS`.
    pub fn set_windows(&mut self, text: &str) -> Result<(), String> {
        self.windows = parse_windows(text)?;
        Ok(())
    }

    /// The lane of a request: the client's header where allowed, else the
    /// first rule its JSON body matches, else `otherwise` (its route's
    /// lane, `normal` by default). A header naming no lane is an error;
    /// where clients may not choose, it is ignored.
    pub fn choose(
        &self,
        body: &[u8],
        header: Option<&str>,
        otherwise: Lane,
    ) -> Result<Lane, String> {
        if let (true, Some(name)) = (self.client_choice, header) {
            return Lane::parse(name.trim());
        }
        if self.rules.is_empty() {
            return Ok(otherwise);
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Ok(otherwise);
        };
        Ok(self
            .rules
            .iter()
            .find(|r| r.matches(&body))
            .map_or(otherwise, |r| r.lane))
    }

    pub fn windows(&self, lane: Lane) -> &[Window] {
        &self.windows[lane.rank() as usize]
    }

    /// `None` while `lane` may be processed (no windows, or inside one);
    /// else when its next window opens (`i64::MAX` if none ever does).
    pub fn opens_at(&self, lane: Lane, now_ms: i64) -> Option<i64> {
        let windows = self.windows(lane);
        if windows.is_empty() || windows.iter().any(|w| w.opened_at(now_ms).is_some()) {
            return None;
        }
        Some(
            windows
                .iter()
                .filter_map(|w| w.next_start(now_ms))
                .min()
                .unwrap_or(i64::MAX),
        )
    }

    /// The lane a message of `lane` waiting since `since_ms` is served as
    /// at `now_ms` (waiting counted from its window's opening for a lane
    /// with windows): see [`served_rank`].
    pub fn served_as(&self, lane: Lane, since_ms: i64, now_ms: i64) -> Lane {
        let opened = self
            .windows(lane)
            .iter()
            .filter_map(|w| w.opened_at(now_ms))
            .min();
        let since = since_ms.max(opened.unwrap_or(i64::MIN));
        Lane::ALL[served_rank(lane, since, now_ms, self.ageing) as usize]
    }

    /// When a message of `lane` captured (or re-sent) at `now_ms` starts
    /// waiting: now, or when its window opens.
    pub fn since(&self, lane: Lane, now_ms: i64) -> i64 {
        self.opens_at(lane, now_ms).unwrap_or(now_ms)
    }
}

/// The rank (0 = `critical`) a message of `lane` that has waited since
/// `since_ms` is served at: one higher for each `ageing` waited, so that a
/// lower lane is never starved for ever. The queues order by it.
pub fn served_rank(lane: Lane, since_ms: i64, now_ms: i64, ageing: Duration) -> u8 {
    let steps = match ageing.as_millis() as i64 {
        0 => 0,
        step => ((now_ms - since_ms).max(0) / step).min(2) as u8,
    };
    lane.rank().saturating_sub(steps)
}

fn parse_windows(text: &str) -> Result<[Vec<Window>; 3], String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(map) = value.as_object() else {
        return Err("must be a JSON object from lane to windows".into());
    };
    let mut windows: [Vec<Window>; 3] = Default::default();
    for (lane, list) in map {
        let lane = Lane::parse(lane)?;
        let list: Vec<&str> = match list {
            serde_json::Value::String(one) => vec![one.as_str()],
            serde_json::Value::Array(many) if !many.is_empty() => many
                .iter()
                .map(|w| {
                    w.as_str()
                        .ok_or(format!("{}: {w} is not a string", lane.as_str()))
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(format!(
                    "{}: {other} is not a list of windows",
                    lane.as_str()
                ))
            }
        };
        windows[lane.rank() as usize] = list
            .into_iter()
            .map(|w| Window::parse(w).map_err(|e| format!("{}: {e}", lane.as_str())))
            .collect::<Result<_, _>>()?;
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// Monday 2026-01-12 00:00 UTC.
    const MONDAY: i64 = 1_768_176_000_000;

    fn lanes(rules: &str, windows: &str) -> Lanes {
        let mut l = Lanes::default();
        l.set_rules(rules).unwrap();
        if !windows.is_empty() {
            l.set_windows(windows).unwrap();
        }
        l
    }

    #[test]
    fn rules_header_and_default() {
        let l = lanes(
            r#"[{"lane":"critical","pointer":"/amount","gte":10000}]"#,
            "",
        );
        assert_eq!(
            l.choose(br#"{"amount":20000}"#, None, Lane::Normal),
            Ok(Lane::Critical)
        );
        assert_eq!(
            l.choose(br#"{"amount":1}"#, None, Lane::Normal),
            Ok(Lane::Normal)
        );
        assert_eq!(l.choose(b"not json", None, Lane::Bulk), Ok(Lane::Bulk));
        // The header is ignored unless the operator allows it...
        assert_eq!(
            l.choose(br#"{"amount":1}"#, Some("critical"), Lane::Normal),
            Ok(Lane::Normal)
        );
        assert_eq!(
            l.choose(b"{}", Some("urgent"), Lane::Normal),
            Ok(Lane::Normal)
        );
        // ...and then it decides, and must name a lane.
        let open = Lanes {
            client_choice: true,
            ..l
        };
        assert_eq!(
            open.choose(br#"{"amount":20000}"#, Some("bulk"), Lane::Normal),
            Ok(Lane::Bulk)
        );
        assert!(open.choose(b"{}", Some("urgent"), Lane::Normal).is_err());
    }

    #[test]
    fn windows_gate_a_lane_and_age_counts_from_their_opening() {
        let l = lanes("[]", r#"{"bulk":["22:00-06:00 UTC"]}"#);
        assert_eq!(l.opens_at(Lane::Normal, MONDAY + 12 * HOUR), None);
        assert_eq!(
            l.opens_at(Lane::Bulk, MONDAY + 12 * HOUR),
            Some(MONDAY + 22 * HOUR)
        );
        assert_eq!(l.opens_at(Lane::Bulk, MONDAY + 23 * HOUR), None);
        // Captured at noon, bulk has waited 5 minutes at 22:05, not 10 h.
        let noon = MONDAY + 12 * HOUR;
        assert_eq!(
            l.served_as(Lane::Bulk, noon, MONDAY + 22 * HOUR + 299_000),
            Lane::Bulk
        );
        assert_eq!(
            l.served_as(Lane::Bulk, noon, MONDAY + 22 * HOUR + 300_000),
            Lane::Normal
        );
        assert_eq!(
            l.served_as(Lane::Bulk, noon, MONDAY + 22 * HOUR + 600_000),
            Lane::Critical
        );
        // Without windows, from its capture.
        assert_eq!(
            l.served_as(Lane::Normal, noon, noon + 300_000),
            Lane::Critical
        );
        assert_eq!(
            l.served_as(Lane::Critical, noon, noon + 10 * HOUR),
            Lane::Critical
        );
    }

    #[test]
    fn bad_windows_say_why() {
        for (windows, why) in [
            ("[]", "JSON object"),
            (r#"{"urgent":"22:00-06:00"}"#, "one of critical"),
            (r#"{"bulk":[]}"#, "not a list of windows"),
            (r#"{"bulk":[5]}"#, "not a string"),
            (r#"{"bulk":"22:00"}"#, "bulk: \"22:00\""),
        ] {
            let e = Lanes::default().set_windows(windows).unwrap_err();
            assert!(e.contains(why), "{windows}: {e}");
        }
    }
}
