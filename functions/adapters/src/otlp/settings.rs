//! The exporter's settings, from OpenTelemetry's standard variables.

use std::time::Duration;

/// What the exporter needs; [`Settings::from_env`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The full URL spans are posted to (`.../v1/traces`).
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// How often a partial batch is sent.
    pub delay: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
    /// Resource attributes: `service.name` and the rest.
    pub resource: Vec<(String, String)>,
}

fn millis(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<Duration, String> {
    count(get, name, default as usize).map(|n| Duration::from_millis(n as u64))
}

fn count(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: usize,
) -> Result<usize, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} must be a positive whole number, not {v:?}")),
        },
    }
}

/// `%XX` escapes, as W3C Baggage (the format of these lists) allows.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key1=value1,key2=value2`.
fn pairs(name: &str, list: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((decode(k.trim()), decode(v.trim()))),
            _ => Err(format!("{name}: {p:?} is not key=value")),
        })
        .collect()
}

impl Settings {
    /// `None` when nothing is to be exported: no endpoint, or
    /// `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
        {
            return Ok(None);
        }
        let endpoint = match (
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            set("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(full), _) => full.trim().to_string(),
            (None, Some(base)) => format!("{}/v1/traces", base.trim().trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        match url::Url::parse(&endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(format!(
                    "the OTLP endpoint {endpoint:?} is not an http(s) URL"
                ))
            }
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = set(name) {
                if p.trim() != "http/json" {
                    return Err(format!(
                        "{name}={p}: this gateway exports OTLP over HTTP as JSON only; \
                         set it to http/json (collectors take both on port 4318)"
                    ));
                }
                break;
            }
        }
        let headers = match set("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
            Some(h) => pairs("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &h)?,
            None => pairs(
                "OTEL_EXPORTER_OTLP_HEADERS",
                &set("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default(),
            )?,
        };
        let mut resource = pairs(
            "OTEL_RESOURCE_ATTRIBUTES",
            &set("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default(),
        )?;
        let service = set("OTEL_SERVICE_NAME")
            .or_else(|| {
                let named = resource.iter().find(|(k, _)| k == "service.name");
                named.map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "failover-gateway".into());
        resource.retain(|(k, _)| k != "service.name");
        resource.insert(0, ("service.name".into(), service));
        if let Some(function) = set("AWS_LAMBDA_FUNCTION_NAME") {
            resource.push(("cloud.provider".into(), "aws".into()));
            resource.push(("faas.name".into(), function));
        }
        let max_queue = count(get, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)?;
        Ok(Some(Settings {
            endpoint,
            headers,
            timeout: millis(get, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
            delay: millis(get, "OTEL_BSP_SCHEDULE_DELAY", 5_000)?,
            max_batch: count(get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.min(max_queue),
            max_queue,
            resource,
        }))
    }
}
