//! The failover policy: one typed struct, read once at start.
//!
//! Every knob of CONTRACT.md lives here with its documented default, so that
//! local mode, the Lambda functions and the tests share one reading of the
//! environment. Parsing takes a lookup function instead of touching the
//! process environment, which keeps tests free of global state.

use std::time::Duration;

use std::sync::Arc;

use crate::lane::Lanes;
use crate::notice::Notices;
use crate::schedule::NotifySchedule;
use crate::webhook::WebhookSecret;

/// `FORCE_MODE`: drills and maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceMode {
    /// Health decides.
    Auto,
    /// Every request goes to the queue (reason `forced`).
    Async,
    /// The breaker never opens (load shedding still applies).
    Sync,
}

impl ForceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ForceMode::Auto => "auto",
            ForceMode::Async => "async",
            ForceMode::Sync => "sync",
        }
    }
}

/// The largest `MAX_BODY_BYTES` and `MAX_ANSWER_BYTES`: a body travels
/// inside Lambda's invocation payload (6 MB each way) as a JSON string, in
/// which one byte takes up to six (`\u0001`); 1,000,000 bytes always fit.
pub const BODY_LIMIT: u32 = 1_000_000;
/// The largest `WEBHOOK_MAX_ATTEMPTS`: each attempt stays on the ticket,
/// which must fit a table item (see the conformance suite's largest ticket).
pub const NOTIFY_ATTEMPTS_LIMIT: u32 = 20;

#[derive(Debug, Clone)]
pub struct Policy {
    pub sync_deadline: Duration,
    pub error_rate_threshold: f64,
    pub slow_call: Duration,
    pub slow_rate_threshold: f64,
    pub breaker_window: Duration,
    pub breaker_min_calls: u32,
    pub breaker_open: Duration,
    /// Cap of the doubling open period.
    pub breaker_open_max: Duration,
    pub breaker_close_after: u32,
    pub sync_max_inflight: usize,
    pub worker_deadline: Duration,
    pub max_attempts: u32,
    pub force_mode: ForceMode,
    pub max_body_bytes: usize,
    /// `MAX_ANSWER_BYTES`: the most of a backend answer that is read; a
    /// longer one is kept as a problem saying so (see `http_backend.rs`).
    pub max_answer_bytes: usize,
    pub ticket_ttl: Duration,
    /// First background retry delay; doubles per attempt, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Budget of the capture (ticket + message) before answering 503.
    pub capture_timeout: Duration,
    pub webhook_max_attempts: u32,
    /// `NOTIFY_RETRY_SCHEDULE`: the waits between notification attempts.
    pub notify_schedule: NotifySchedule,
    pub webhook_timeout: Duration,
    pub webhook_secret: Option<WebhookSecret>,
    /// Callback URLs on private (RFC 1918, ULA) networks.
    pub allow_private_callbacks: bool,
    /// Callback URLs on loopback, and plain http for them.
    pub allow_loopback_callbacks: bool,
    /// AWS mode: how long an instance trusts its copy of the fleet's breaker.
    pub health_cache: Duration,
    /// Background attempts per second per worker instance (0: no bound).
    pub drain_max_rps: u32,
    /// After the breaker closes, the drain rate grows from a tenth of
    /// `drain_max_rps` to all of it over this long.
    pub drain_ramp: Duration,
    /// `PRIORITY_RULES`, `LANE_WINDOWS`, `LANE_AGEING_S`, `ALLOW_CLIENT_LANE`.
    pub lanes: Arc<Lanes>,
    /// The email and SMS texts of terminal events (`NOTICE_TEMPLATE_*`,
    /// `PUBLIC_BASE_URL`).
    pub notices: Arc<Notices>,
}

impl Policy {
    /// How long a claim on a ticket (and a received message) stays its
    /// holder's: the background deadline plus room for the writes around it.
    pub fn worker_lease(&self) -> Duration {
        self.worker_deadline + self.capture_timeout * 2 + Duration::from_secs(1)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            sync_deadline: Duration::from_millis(3000),
            error_rate_threshold: 0.10,
            slow_call: Duration::from_millis(3000),
            slow_rate_threshold: 0.50,
            breaker_window: Duration::from_secs(30),
            breaker_min_calls: 10,
            breaker_open: Duration::from_millis(5000),
            breaker_open_max: Duration::from_secs(300),
            breaker_close_after: 3,
            sync_max_inflight: 64,
            worker_deadline: Duration::from_millis(10_000),
            max_attempts: 8,
            force_mode: ForceMode::Auto,
            max_body_bytes: 256 * 1024,
            max_answer_bytes: BODY_LIMIT as usize,
            ticket_ttl: Duration::from_secs(7 * 24 * 3600),
            retry_base: Duration::from_millis(1000),
            retry_max: Duration::from_secs(300),
            capture_timeout: Duration::from_millis(2000),
            webhook_max_attempts: 8,
            notify_schedule: NotifySchedule::default(),
            webhook_timeout: Duration::from_secs(10),
            webhook_secret: None,
            allow_private_callbacks: false,
            allow_loopback_callbacks: false,
            health_cache: Duration::from_millis(1000),
            drain_max_rps: 100,
            drain_ramp: Duration::from_secs(30),
            lanes: Arc::new(Lanes::default()),
            notices: Arc::new(Notices::default()),
        }
    }
}

/// The notices, if any of their variables is set (else `base`'s).
fn notices(
    get: &dyn Fn(&str) -> Option<String>,
    base: &Arc<Notices>,
) -> Result<Arc<Notices>, ConfigError> {
    let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let names = [
        "NOTICE_TEMPLATE_SUBJECT",
        "NOTICE_TEMPLATE_EMAIL",
        "NOTICE_TEMPLATE_SMS",
        "PUBLIC_BASE_URL",
    ];
    let [subject, email, sms, base_url] = names.map(set);
    if [&subject, &email, &sms, &base_url]
        .iter()
        .all(|v| v.is_none())
    {
        return Ok(base.clone());
    }
    Notices::new(
        subject.as_deref(),
        email.as_deref(),
        sms.as_deref(),
        base_url.as_deref(),
    )
    .map(Arc::new)
    .map_err(|e| ConfigError {
        name: e.name,
        value: set(e.name).unwrap_or_default(),
        problem: e.problem,
    })
}

/// A variable that is set but cannot be used. Start-up stops with this text.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(raw) = (self.get)(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(default);
        };
        let err = |problem: String| ConfigError {
            name,
            value: raw.clone(),
            problem,
        };
        let value = raw.trim().parse::<T>().map_err(|e| err(e.to_string()))?;
        check(&value).map_err(err)?;
        Ok(value)
    }

    fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let ms = self.parse(name, default.as_millis() as u64, |v| {
            (*v > 0).then_some(()).ok_or("must be > 0".into())
        })?;
        Ok(Duration::from_millis(ms))
    }

    fn rate(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        self.parse(name, default, |v| {
            (0.0..=1.0)
                .contains(v)
                .then_some(())
                .ok_or("must be between 0 and 1".into())
        })
    }

    fn count_to(&self, name: &'static str, default: u32, max: u32) -> Result<u32, ConfigError> {
        self.parse(name, default, |v| {
            (1..=max)
                .contains(v)
                .then_some(())
                .ok_or(format!("must be from 1 to {max}"))
        })
    }

    fn count(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        self.parse(name, default, |v| {
            (*v > 0).then_some(()).ok_or("must be > 0".into())
        })
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(name, default, |_| Ok(()))
    }
}

fn lanes(r: &Reader, base: &Lanes) -> Result<Arc<Lanes>, ConfigError> {
    let mut lanes = base.clone();
    let ageing = r.count("LANE_AGEING_S", base.ageing.as_secs() as u32)?;
    lanes.ageing = Duration::from_secs(u64::from(ageing));
    lanes.client_choice = r.flag("ALLOW_CLIENT_LANE", base.client_choice)?;
    type Set = fn(&mut Lanes, &str) -> Result<(), String>;
    let parts: [(&'static str, Set); 2] = [
        ("PRIORITY_RULES", Lanes::set_rules),
        ("LANE_WINDOWS", Lanes::set_windows),
    ];
    for (name, set) in parts {
        if let Some(text) = (r.get)(name).filter(|v| !v.trim().is_empty()) {
            set(&mut lanes, &text).map_err(|problem| ConfigError {
                name,
                value: text,
                problem,
            })?;
        }
    }
    Ok(Arc::new(lanes))
}

impl Policy {
    /// Reads the policy; unset variables take the defaults of `base`.
    pub fn from_lookup(
        base: Policy,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Policy, ConfigError> {
        let r = Reader { get };
        let force_mode = match get("FORCE_MODE").as_deref().map(str::trim) {
            None | Some("") | Some("auto") => base.force_mode,
            Some("async") => ForceMode::Async,
            Some("sync") => ForceMode::Sync,
            Some(other) => {
                return Err(ConfigError {
                    name: "FORCE_MODE",
                    value: other.into(),
                    problem: "must be auto, async or sync".into(),
                })
            }
        };
        let webhook_secret = match get("WEBHOOK_SECRET").filter(|v| !v.is_empty()) {
            None => base.webhook_secret,
            Some(v) => Some(WebhookSecret::parse(&v).map_err(|problem| ConfigError {
                name: "WEBHOOK_SECRET",
                value: "<redacted>".into(),
                problem,
            })?),
        };
        let lanes = lanes(&r, &base.lanes)?;
        let p = Policy {
            lanes,
            notices: notices(get, &base.notices)?,
            sync_deadline: r.millis("SYNC_DEADLINE_MS", base.sync_deadline)?,
            error_rate_threshold: r.rate("ERROR_RATE_THRESHOLD", base.error_rate_threshold)?,
            slow_call: r.millis("SLOW_CALL_MS", base.slow_call)?,
            slow_rate_threshold: r.rate("SLOW_RATE_THRESHOLD", base.slow_rate_threshold)?,
            breaker_window: Duration::from_secs(
                r.count("BREAKER_WINDOW_S", base.breaker_window.as_secs() as u32)? as u64,
            ),
            breaker_min_calls: r.count("BREAKER_MIN_CALLS", base.breaker_min_calls)?,
            breaker_open: r.millis("BREAKER_OPEN_MS", base.breaker_open)?,
            breaker_open_max: r.millis("BREAKER_OPEN_MAX_MS", base.breaker_open_max)?,
            breaker_close_after: r.count("BREAKER_CLOSE_AFTER", base.breaker_close_after)?,
            sync_max_inflight: r.count("SYNC_MAX_INFLIGHT", base.sync_max_inflight as u32)?
                as usize,
            worker_deadline: r.millis("WORKER_DEADLINE_MS", base.worker_deadline)?,
            max_attempts: r.count("MAX_ATTEMPTS", base.max_attempts)?,
            force_mode,
            max_body_bytes: r.count_to("MAX_BODY_BYTES", base.max_body_bytes as u32, BODY_LIMIT)?
                as usize,
            max_answer_bytes: r.count_to(
                "MAX_ANSWER_BYTES",
                base.max_answer_bytes as u32,
                BODY_LIMIT,
            )? as usize,
            ticket_ttl: Duration::from_secs(r.parse(
                "TICKET_TTL_SECONDS",
                base.ticket_ttl.as_secs(),
                |v| (*v > 0).then_some(()).ok_or("must be > 0".into()),
            )?),
            retry_base: r.millis("RETRY_BASE_MS", base.retry_base)?,
            retry_max: r.millis("RETRY_MAX_MS", base.retry_max)?,
            capture_timeout: r.millis("CAPTURE_TIMEOUT_MS", base.capture_timeout)?,
            webhook_max_attempts: r.count_to(
                "WEBHOOK_MAX_ATTEMPTS",
                base.webhook_max_attempts,
                NOTIFY_ATTEMPTS_LIMIT,
            )?,
            notify_schedule: r.parse("NOTIFY_RETRY_SCHEDULE", base.notify_schedule, |_| Ok(()))?,
            webhook_timeout: r.millis("WEBHOOK_TIMEOUT_MS", base.webhook_timeout)?,
            webhook_secret,
            allow_private_callbacks: r
                .flag("CALLBACK_ALLOW_PRIVATE", base.allow_private_callbacks)?,
            allow_loopback_callbacks: r
                .flag("CALLBACK_ALLOW_LOOPBACK", base.allow_loopback_callbacks)?,
            health_cache: r.millis("HEALTH_CACHE_MS", base.health_cache)?,
            drain_max_rps: r.parse("DRAIN_MAX_RPS", base.drain_max_rps, |_| Ok(()))?,
            drain_ramp: Duration::from_secs(
                r.count("DRAIN_RAMP_S", base.drain_ramp.as_secs() as u32)? as u64,
            ),
        };
        Ok(p)
    }

    /// Reads the policy from the process environment.
    pub fn from_env(base: Policy) -> Result<Policy, ConfigError> {
        Self::from_lookup(base, &|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Policy, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Policy::from_lookup(Policy::default(), &|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_contracts() {
        let p = read(&[]).unwrap();
        assert_eq!(p.sync_deadline, Duration::from_millis(3000));
        assert_eq!(p.max_attempts, 8);
        assert_eq!(p.sync_max_inflight, 64);
        assert_eq!(p.force_mode, ForceMode::Auto);
        assert_eq!(p.ticket_ttl, Duration::from_secs(604_800));
        assert_eq!(p.max_body_bytes, 262_144);
        assert_eq!(p.max_answer_bytes, 1_000_000);
        let most = read(&[
            ("MAX_BODY_BYTES", "1000000"),
            ("MAX_ANSWER_BYTES", "1000000"),
            ("WEBHOOK_MAX_ATTEMPTS", "20"),
        ])
        .unwrap();
        assert_eq!(most.max_body_bytes + most.max_answer_bytes, 2_000_000);
        assert_eq!(most.webhook_max_attempts, 20);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = read(&[("SYNC_DEADLINE_MS", "soon")]).unwrap_err();
        assert_eq!(e.name, "SYNC_DEADLINE_MS");
        assert!(read(&[("ERROR_RATE_THRESHOLD", "1.5")]).is_err());
        assert!(read(&[("FORCE_MODE", "maybe")]).is_err());
        assert!(read(&[("WEBHOOK_SECRET", "nope")]).is_err());
        assert!(read(&[("MAX_ATTEMPTS", "0")]).is_err());
        for (name, bad) in [
            (
                "PRIORITY_RULES",
                r#"[{"lane":"vip","pointer":"/a","eq":1}]"#,
            ),
            ("LANE_WINDOWS", r#"{"bulk":"22:00-06:00 Nowhere/Else"}"#),
            ("LANE_AGEING_S", "0"),
            ("ALLOW_CLIENT_LANE", "maybe"),
        ] {
            let e = read(&[(name, bad)]).unwrap_err();
            assert_eq!(e.name, name, "{bad}");
            assert_eq!(e.value, bad);
        }
        for (name, bad) in [
            ("HEALTH_CACHE_MS", "0"),
            ("DRAIN_MAX_RPS", "-1"),
            ("DRAIN_MAX_RPS", "fast"),
            ("DRAIN_RAMP_S", "0"),
            ("NOTIFY_RETRY_SCHEDULE", "5s,soon"),
            // Past what a table item or a Lambda payload can hold.
            ("MAX_BODY_BYTES", "1000001"),
            ("MAX_ANSWER_BYTES", "1000001"),
            ("WEBHOOK_MAX_ATTEMPTS", "21"),
        ] {
            let e = read(&[(name, bad)]).unwrap_err();
            assert_eq!(e.name, name, "{bad}");
        }
    }

    #[test]
    fn values_are_read() {
        let p = read(&[("SYNC_DEADLINE_MS", "250"), ("FORCE_MODE", "async")]).unwrap();
        let s = read(&[("NOTIFY_RETRY_SCHEDULE", "1s, 1m")]).unwrap();
        assert_eq!(s.notify_schedule.to_string(), "1s,1m");
        assert_eq!(p.sync_deadline, Duration::from_millis(250));
        assert_eq!(p.force_mode, ForceMode::Async);
        // 0 is a valid drain bound: none.
        let p = read(&[("DRAIN_MAX_RPS", "0"), ("HEALTH_CACHE_MS", "250")]).unwrap();
        assert_eq!(
            (p.drain_max_rps, p.health_cache),
            (0, Duration::from_millis(250))
        );
    }
}
