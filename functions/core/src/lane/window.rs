//! `LANE_WINDOWS`: the daily windows in which a lane is processed, e.g.
//! `Mon-Fri 22:00-06:00 Europe/Berlin`.
//!
//! A window is `[days] HH:MM-HH:MM [zone]`: days as `Mon`, `Mon-Fri`,
//! `Fri-Mon` or a list `Mon,Wed,Sat-Sun` (every day if left out), an end
//! before the start running past midnight into the next day (the days name
//! the day it starts), `24:00` the end of the day, and an IANA zone (UTC if
//! left out). Local times become instants through the zone's rules from
//! the bundled time zone database (jiff), so daylight-saving days come out
//! right: a time skipped in spring is moved forward by the gap (02:30 on
//! that day is 03:30, so a window inside the gap runs an hour late that
//! day), a time repeated in autumn means its first occurrence.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

#[derive(Debug, Clone)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after midnight; `end` may be 1440, or not after `start`
    /// (past midnight).
    start: u16,
    end: u16,
    zone: TimeZone,
    text: String,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn day(name: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("{name:?} is not a day (Mon to Sun)"))
}

fn days(spec: &str) -> Result<[bool; 7], String> {
    let mut on = [false; 7];
    for part in spec.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => (day(part)?, day(part)?),
        };
        let mut d = from;
        loop {
            on[d] = true;
            if d == to {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(on)
}

fn minutes(hhmm: &str) -> Result<u16, String> {
    let bad = || format!("{hhmm:?} is not HH:MM");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let range_at = parts
            .iter()
            .position(|p| p.contains(':'))
            .ok_or_else(|| format!("{text:?}: needs a time range HH:MM-HH:MM"))?;
        let days = match range_at {
            0 => [true; 7],
            1 => days(parts[0]).map_err(|e| format!("{text:?}: {e}"))?,
            _ => return Err(format!("{text:?}: expected [days] HH:MM-HH:MM [zone]")),
        };
        let (from, to) = parts[range_at]
            .split_once('-')
            .ok_or_else(|| format!("{text:?}: needs a time range HH:MM-HH:MM"))?;
        let (start, end) = (minutes(from), minutes(to));
        let (start, end) = (
            start.map_err(|e| format!("{text:?}: {e}"))?,
            end.map_err(|e| format!("{text:?}: {e}"))?,
        );
        if start == 1440 || start == end {
            return Err(format!("{text:?}: the window is empty"));
        }
        let zone = match &parts[range_at + 1..] {
            [] => TimeZone::UTC,
            [name] => TimeZone::get(name).map_err(|_| {
                format!("{text:?}: {name:?} is not an IANA time zone (e.g. Europe/Berlin)")
            })?,
            _ => return Err(format!("{text:?}: expected [days] HH:MM-HH:MM [zone]")),
        };
        Ok(Window {
            days,
            start,
            end,
            zone,
            text: text.to_string(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The instant of local time `minute` on `date` (1440: the next day's
    /// midnight).
    fn at(&self, date: Date, minute: u16) -> Option<i64> {
        let (date, minute) = match minute {
            1440 => (date.tomorrow().ok()?, 0),
            m => (date, m),
        };
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        let local = DateTime::from_parts(date, time);
        let instant = self.zone.to_ambiguous_timestamp(local).compatible().ok()?;
        Some(instant.as_millisecond())
    }

    /// The occurrence that starts on local `date`, if it is one of its days.
    fn occurrence(&self, date: Date) -> Option<(i64, i64)> {
        if !self.days[weekday_index(date.weekday())] {
            return None;
        }
        let start = self.at(date, self.start)?;
        let end = match self.end > self.start {
            true => self.at(date, self.end)?,
            false => self.at(date.tomorrow().ok()?, self.end)?,
        };
        (end > start).then_some((start, end))
    }

    /// Occurrences starting from the day before `now` (local) to a week on.
    fn occurrences(&self, now_ms: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let today = Timestamp::from_millisecond(now_ms)
            .map(|t| self.zone.to_datetime(t).date())
            .ok();
        (-1..=8).filter_map(move |offset: i64| {
            let date = today?.checked_add(jiff::Span::new().days(offset)).ok()?;
            self.occurrence(date)
        })
    }

    /// The start of the occurrence `now` is in, if any.
    pub fn opened_at(&self, now_ms: i64) -> Option<i64> {
        self.occurrences(now_ms)
            .find(|(start, end)| (*start..*end).contains(&now_ms))
            .map(|(start, _)| start)
    }

    /// The next start after `now`.
    pub fn next_start(&self, now_ms: i64) -> Option<i64> {
        self.occurrences(now_ms)
            .map(|(start, _)| start)
            .filter(|start| *start > now_ms)
            .min()
    }
}

fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch ms of a UTC time `YYYY-MM-DDTHH:MM`.
    fn utc(s: &str) -> i64 {
        format!("{s}:00Z")
            .parse::<Timestamp>()
            .expect("a timestamp")
            .as_millisecond()
    }

    #[test]
    fn an_overnight_weekday_window_in_berlin() {
        let w = Window::parse("Mon-Fri 22:00-06:00 Europe/Berlin").unwrap();
        // Tuesday 2026-01-13, winter: Berlin is UTC+1.
        assert_eq!(w.opened_at(utc("2026-01-13T20:59")), None);
        assert_eq!(
            w.next_start(utc("2026-01-13T20:59")),
            Some(utc("2026-01-13T21:00"))
        );
        assert_eq!(
            w.opened_at(utc("2026-01-13T21:00")),
            Some(utc("2026-01-13T21:00"))
        );
        // Still open at 05:59 Wednesday, closed at 06:00.
        assert_eq!(
            w.opened_at(utc("2026-01-14T04:59")),
            Some(utc("2026-01-13T21:00"))
        );
        assert_eq!(w.opened_at(utc("2026-01-14T05:00")), None);
        // Friday night's window runs into Saturday; none starts Saturday.
        assert!(w.opened_at(utc("2026-01-17T04:00")).is_some());
        assert_eq!(
            w.next_start(utc("2026-01-17T06:00")),
            Some(utc("2026-01-19T21:00"))
        );
    }

    #[test]
    fn daylight_saving_days_keep_local_times() {
        let w = Window::parse("22:00-06:00 Europe/Berlin").unwrap();
        // 2026-03-29: clocks go 02:00 -> 03:00. The night before opens at
        // 21:00 UTC (UTC+1) and closes at 06:00 local = 04:00 UTC (UTC+2).
        assert_eq!(
            w.opened_at(utc("2026-03-29T03:59")),
            Some(utc("2026-03-28T21:00"))
        );
        assert_eq!(w.opened_at(utc("2026-03-29T04:00")), None);
        assert_eq!(
            w.next_start(utc("2026-03-29T04:00")),
            Some(utc("2026-03-29T20:00"))
        );
        // 2026-10-25: 03:00 -> 02:00. Closes at 06:00 local = 05:00 UTC.
        assert!(w.opened_at(utc("2026-10-25T04:59")).is_some());
        assert_eq!(w.opened_at(utc("2026-10-25T05:00")), None);
        // A start inside the skipped hour is the first instant after it.
        let skipped = Window::parse("02:30-04:00 Europe/Berlin").unwrap();
        assert_eq!(
            skipped.next_start(utc("2026-03-28T23:00")),
            Some(utc("2026-03-29T01:30"))
        );
        // One wholly inside it runs an hour late, for as long.
        let moved = Window::parse("02:10-02:50 Europe/Berlin").unwrap();
        assert_eq!(
            moved.next_start(utc("2026-03-28T23:00")),
            Some(utc("2026-03-29T01:10"))
        );
        assert!(moved.opened_at(utc("2026-03-29T01:49")).is_some());
        assert!(moved.opened_at(utc("2026-03-29T01:50")).is_none());
        // A repeated hour counts once, from its first occurrence.
        let twice = Window::parse("02:00-02:30 Europe/Berlin").unwrap();
        assert_eq!(
            twice.next_start(utc("2026-10-24T23:00")),
            Some(utc("2026-10-25T00:00"))
        );
    }

    #[test]
    fn days_lists_wraps_and_whole_days() {
        let w = Window::parse("Sat-Sun 00:00-24:00 Europe/Berlin").unwrap();
        assert!(w.opened_at(utc("2026-01-17T12:00")).is_some());
        assert_eq!(
            w.opened_at(utc("2026-01-18T22:59")),
            Some(utc("2026-01-17T23:00"))
        );
        assert_eq!(w.opened_at(utc("2026-01-18T23:00")), None);
        let w = Window::parse("Fri-Mon,wed 09:00-10:00").unwrap();
        let open: Vec<bool> = (12..=18)
            .map(|d| w.opened_at(utc(&format!("2026-01-{d}T09:30"))).is_some())
            .collect();
        // Mon 12 .. Sun 18.
        assert_eq!(open, [true, false, true, false, true, true, true]);
    }

    #[test]
    fn bad_windows_say_why() {
        let cases = [
            ("", "needs a time range"),
            ("Mon-Fri", "needs a time range"),
            ("Mon-Fry 22:00-06:00", "\"Fry\" is not a day"),
            ("25:00-06:00", "not HH:MM"),
            ("22:60-06:00", "not HH:MM"),
            ("9:00-10:00", "not HH:MM"),
            ("10:00-10:00", "empty"),
            ("24:00-06:00", "empty"),
            ("22:00-06:00 Mars/Olympus", "not an IANA time zone"),
            ("Mon 22:00-06:00 UTC extra", "expected [days]"),
        ];
        for (text, why) in cases {
            let e = Window::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
