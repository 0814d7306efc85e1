//! How the tool prints: aligned tables for people, JSON for scripts, and
//! the times and ages both read.

use chrono::{DateTime, SecondsFormat, Utc};

/// An epoch-ms time as RFC 3339 (UTC, seconds).
pub fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// A duration in ms, the largest unit first: `3d4h`, `2h5m`, `12m3s`, `4s`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

use crate::Usage;

fn usage(text: String) -> anyhow::Error {
    Usage(text).into()
}

/// `30s`, `10m`, `2h`, `1d` as ms.
pub fn parse_age(raw: &str) -> anyhow::Result<i64> {
    let raw = raw.trim();
    let bad = || {
        usage(format!(
            "{raw:?}: an age is a whole number with s, m, h or d (30m, 2h)"
        ))
    };
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (n, unit) = raw.split_at(split);
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.parse::<i64>()
        .map(|n| n.saturating_mul(unit_ms))
        .map_err(|_| bad())
}

/// A point in time: RFC 3339, or an age back from `now`.
pub fn parse_since(raw: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(t.timestamp_millis());
    }
    parse_age(raw).map(|ago| now - ago).map_err(|_| {
        usage(format!(
            "{raw:?} is neither an RFC 3339 time nor an age (30m, 2h)"
        ))
    })
}

/// Columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_both_ways() {
        assert_eq!(parse_age("90s").unwrap(), 90_000);
        assert_eq!(parse_age("2h").unwrap(), 7_200_000);
        for bad in ["", "2", "h", "2w", "-1h", "1.5h"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(age(3_723_000), "1h2m");
        assert_eq!(age(59_000), "59s");
        assert_eq!(
            parse_since("2026-12-01T10:00:00Z", 0).unwrap(),
            1_796_119_200_000
        );
        assert_eq!(parse_since("1m", 100_000).unwrap(), 40_000);
        assert!(parse_since("yesterday", 0).is_err());
    }

    #[test]
    fn tables_align() {
        let t = table(&["ID", "S"], &[vec!["a".into(), "queued".into()]]);
        assert_eq!(t, "ID  S\na   queued\n");
    }
}
