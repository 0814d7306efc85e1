//! The routes file (`ROUTES_FILE`, TOML): read once at start, and refused
//! with the file, the line and the reason when anything in it is wrong, so
//! that a typo stops a deploy instead of misrouting payments.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Route, Segment};
use crate::config::{ForceMode, Policy};
use crate::lane::Lane;

/// Why a routes file was refused: `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct RouteError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    route: Vec<Spanned<Spec>>,
}

/// One `[[route]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    method: String,
    path: String,
    backend: String,
    breaker_group: Option<String>,
    #[serde(default)]
    forward_headers: Vec<String>,
    #[serde(default)]
    response_headers: Vec<String>,
    content_types: Option<Vec<String>>,
    #[serde(default)]
    sync_only: bool,
    /// The lane of its requests that no `PRIORITY_RULES` rule places.
    lane: Option<String>,
    // Policy overrides (CONTRACT.md's variables, per route).
    deadline_ms: Option<u64>,
    slow_call_ms: Option<u64>,
    error_rate_threshold: Option<f64>,
    slow_rate_threshold: Option<f64>,
    breaker_window_s: Option<u64>,
    breaker_min_calls: Option<u32>,
    sync_max_inflight: Option<u32>,
    force_mode: Option<String>,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// The gateway's own paths, which no route may shadow: nothing under
/// these first segments, and no pattern that matches one of the paths.
const RESERVED: [&str; 2] = ["tickets", "health"];
const GATEWAY_PATHS: [&str; 3] = ["/tickets/_/result", "/tickets/_", "/health"];
/// Headers the gateway sets itself, or that belong to one connection.
const NOT_FORWARDED: [&str; 11] = [
    "idempotency-key",
    crate::lane::LANE_HEADER,
    "x-request-id",
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
];

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

pub(super) fn parse(text: &str, file: &str, base: &Policy) -> Result<Vec<Route>, RouteError> {
    let refuse = |line: usize, reason: String| RouteError {
        file: file.to_string(),
        line,
        reason,
    };
    let parsed: RoutesFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        refuse(line, e.message().to_string())
    })?;
    if parsed.route.is_empty() {
        return Err(refuse(1, "no [[route]]".into()));
    }
    let mut routes: Vec<(usize, Route)> = Vec::new();
    for spec in parsed.route {
        let line = line_of(text, spec.span().start);
        let route = validate(spec.into_inner(), base).map_err(|r| refuse(line, r))?;
        if let Some((at, _)) = routes.iter().find(|(_, r)| r.name == route.name) {
            let reason = format!("route {:?} is already defined on line {at}", route.name);
            return Err(refuse(line, reason));
        }
        if let Some((at, other)) = routes.iter().find(|(_, r)| overlaps(r, &route)) {
            let reason = format!(
                "{} {} overlaps route {:?} ({} {}, line {at}): a request could match both",
                route.method, route.path, other.name, other.method, other.path
            );
            return Err(refuse(line, reason));
        }
        if let Some((at, first)) = routes.iter().find(|(_, r)| r.group == route.group) {
            if let Some(knob) = breaker_differs(&first.policy, &route.policy) {
                let reason = format!(
                    "{knob} differs from route {:?} (line {at}) of the same breaker group {:?}: \
                     a group has one breaker",
                    first.name, route.group
                );
                return Err(refuse(line, reason));
            }
        }
        routes.push((line, route));
    }
    Ok(routes.into_iter().map(|(_, r)| r).collect())
}

/// The first breaker setting in which two routes' policies differ.
fn breaker_differs(a: &Policy, b: &Policy) -> Option<&'static str> {
    [
        ("slow_call_ms", a.slow_call == b.slow_call),
        (
            "error_rate_threshold",
            a.error_rate_threshold == b.error_rate_threshold,
        ),
        (
            "slow_rate_threshold",
            a.slow_rate_threshold == b.slow_rate_threshold,
        ),
        ("breaker_window_s", a.breaker_window == b.breaker_window),
        (
            "breaker_min_calls",
            a.breaker_min_calls == b.breaker_min_calls,
        ),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(knob, _)| knob)
}

fn overlaps(a: &Route, b: &Route) -> bool {
    a.method == b.method
        && a.segments.len() == b.segments.len()
        && a.segments.iter().zip(&b.segments).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            _ => true,
        })
}

fn is_token(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

fn path_segments(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} must start with /"));
    };
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        let braced = seg.starts_with('{') || seg.ends_with('}');
        let name = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let parsed = match name {
            Some(name) if is_token(name, &['_']) => Segment::Param(name.to_string()),
            _ if braced => return Err(format!("path {path:?}: bad parameter {seg:?}")),
            _ if is_token(seg, &['-', '.', '_', '~']) => Segment::Literal(seg.to_string()),
            _ => return Err(format!("path {path:?}: bad segment {seg:?}")),
        };
        if let Segment::Param(name) = &parsed {
            if segments.contains(&parsed) {
                return Err(format!("path {path:?}: parameter {{{name}}} twice"));
            }
        }
        segments.push(parsed);
    }
    if let Some(Segment::Literal(first)) = segments.first() {
        if RESERVED.contains(&first.as_str()) {
            return Err(format!(
                "path {path:?} would shadow the gateway's own /{first}"
            ));
        }
    }
    let probe = Route::probe(segments.clone());
    for own in GATEWAY_PATHS {
        if probe.matches(&super::segments(own)).is_some() {
            return Err(format!(
                "path {path:?} would shadow the gateway's own {own}"
            ));
        }
    }
    Ok(segments)
}

/// The backend template: an http(s) URL whose `{name}`s are path
/// parameters of the route, in its path only.
fn backend(url: &str, segments: &[Segment]) -> Result<(), String> {
    let params: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
        .collect();
    let mut concrete = url.to_string();
    for p in &params {
        concrete = concrete.replace(&format!("{{{p}}}"), "x");
    }
    if let Some(open) = concrete.find('{') {
        let name: String = concrete[open..].chars().take_while(|c| *c != '}').collect();
        return Err(format!(
            "backend {url:?}: {name}}} is not a parameter of the path"
        ));
    }
    let parsed = url::Url::parse(&concrete).map_err(|e| format!("backend {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("backend {url:?}: must be http or https"));
    }
    if origin(url).contains('{') {
        return Err(format!(
            "backend {url:?}: parameters go in the path, not the host"
        ));
    }
    Ok(())
}

fn headers(list: Vec<String>, what: &str) -> Result<Vec<String>, String> {
    list.into_iter()
        .map(|h| {
            let lower = h.to_ascii_lowercase();
            if !is_token(&lower, &['-', '_']) {
                return Err(format!("{what}: {h:?} is not a header name"));
            }
            if NOT_FORWARDED.contains(&lower.as_str()) {
                return Err(format!("{what}: {h:?} is set by the gateway itself"));
            }
            Ok(lower)
        })
        .collect()
}

fn positive<T: PartialOrd + Default + Copy>(v: Option<T>, what: &str) -> Result<Option<T>, String> {
    match v {
        Some(x) if x <= T::default() => Err(format!("{what} must be > 0")),
        other => Ok(other),
    }
}

fn rate(v: Option<f64>, what: &str) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) => Err(format!("{what} must be between 0 and 1")),
        other => Ok(other),
    }
}

fn policy(spec: &Spec, base: &Policy) -> Result<Policy, String> {
    let ms = Duration::from_millis;
    let mut p = base.clone();
    if let Some(v) = positive(spec.deadline_ms, "deadline_ms")? {
        p.sync_deadline = ms(v);
    }
    if let Some(v) = positive(spec.slow_call_ms, "slow_call_ms")? {
        p.slow_call = ms(v);
    }
    if let Some(v) = rate(spec.error_rate_threshold, "error_rate_threshold")? {
        p.error_rate_threshold = v;
    }
    if let Some(v) = rate(spec.slow_rate_threshold, "slow_rate_threshold")? {
        p.slow_rate_threshold = v;
    }
    if let Some(v) = positive(spec.breaker_window_s, "breaker_window_s")? {
        p.breaker_window = Duration::from_secs(v);
    }
    if let Some(v) = positive(spec.breaker_min_calls, "breaker_min_calls")? {
        p.breaker_min_calls = v;
    }
    if let Some(v) = positive(spec.sync_max_inflight, "sync_max_inflight")? {
        p.sync_max_inflight = v as usize;
    }
    if let Some(mode) = &spec.force_mode {
        p.force_mode = match mode.as_str() {
            "auto" => ForceMode::Auto,
            "async" => ForceMode::Async,
            "sync" => ForceMode::Sync,
            other => return Err(format!("force_mode {other:?}: one of auto, async, sync")),
        };
    }
    Ok(p)
}

fn validate(spec: Spec, base: &Policy) -> Result<Route, String> {
    if !is_token(&spec.name, &['-', '_']) {
        return Err(format!(
            "name {:?}: letters, digits, - and _ only",
            spec.name
        ));
    }
    let method = spec.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "method {:?}: one of {}",
            spec.method,
            METHODS.join(", ")
        ));
    }
    let segments = path_segments(&spec.path)?;
    backend(&spec.backend, &segments)?;
    let policy = policy(&spec, base)?;
    let group = match &spec.breaker_group {
        Some(g) if is_token(g, &['-', '_', '.']) => g.clone(),
        Some(g) => return Err(format!("breaker_group {g:?}: letters, digits, - _ . only")),
        None => origin(&spec.backend),
    };
    if group.len() > GROUP_MAX {
        return Err(format!(
            "breaker group {:?}...: at most {GROUP_MAX} characters (the fleet's breaker is \
             stored under it); name a shorter breaker_group",
            &group[..group.floor_char_boundary(40)]
        ));
    }
    let content_types = match spec.content_types.clone() {
        None => vec!["application/json".to_string()],
        Some(list) if list.is_empty() => return Err("content_types is empty".into()),
        Some(list) => list.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
    };
    Ok(Route {
        name: spec.name,
        method,
        path: spec.path,
        segments,
        backend: spec.backend,
        group,
        policy: Arc::new(policy),
        forward_headers: headers(spec.forward_headers, "forward_headers")?,
        response_headers: headers(spec.response_headers, "response_headers")?,
        content_types,
        sync_only: spec.sync_only,
        lane: match &spec.lane {
            Some(name) => Lane::parse(name)?,
            None => Lane::Normal,
        },
    })
}

/// `scheme://host:port` of a backend template (everything before its path).
/// The longest breaker group (a host name of 253 and a scheme and port
/// fit): the fleet's health items are keyed by it, and sized with it.
pub const GROUP_MAX: usize = 280;

fn origin(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    url[..end].to_string()
}
