//! Off-peak calendars: the hours in which a backfill may start windows.
//!
//! A calendar is a time zone and spans such as `Mon-Fri 20:00-06:00` (a
//! span that ends at or before its start runs past midnight into the next
//! day; days name the day it starts on; no days means every day). Spans are
//! laid out on local dates and turned into UTC instants, so a DST change
//! moves them with the wall clock: a start in the spring-forward gap begins
//! at the first valid local minute after it, an ambiguous autumn time at its
//! first occurrence.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::request::{err, RequestError};

/// A calendar as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    /// IANA zone the spans are in, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// `[DAYS ]HH:MM-HH:MM`, DAYS a comma list of `Mon`..`Sun` or ranges
    /// (`Mon-Fri`, `Fri-Mon`).
    pub spans: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// Monday first.
    days: [bool; 7],
    start_min: u32,
    /// Minutes from the start to the end (1..=1440).
    length_min: u32,
}

/// A validated calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    tz: Tz,
    spans: Vec<Span>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FIELD: &str = "allowed_hours";

fn day(s: &str) -> Result<usize, RequestError> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| err(FIELD, format!("unknown day {s:?}; use Mon, Tue, ..., Sun")))
}

fn minute(s: &str, span: &str) -> Result<u32, RequestError> {
    let bad = || err(FIELD, format!("span {span:?}: {s:?} is not a time HH:MM"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn span(text: &str) -> Result<Span, RequestError> {
    let (days_text, times) = match text.trim().rsplit_once(' ') {
        Some((d, t)) => (Some(d), t),
        None => (None, text.trim()),
    };
    let mut days = [days_text.is_none(); 7];
    for part in days_text
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(part)?] = true,
        }
    }
    let (from, to) = times
        .split_once('-')
        .ok_or_else(|| err(FIELD, format!("span {text:?}: expected HH:MM-HH:MM")))?;
    let (start, end) = (minute(from, text)?, minute(to, text)?);
    if start == 1440 {
        return Err(err(
            FIELD,
            format!("span {text:?}: a span starts before 24:00"),
        ));
    }
    let length_min = if end > start {
        end - start
    } else {
        1440 - start + end
    };
    if end == start {
        return Err(err(
            FIELD,
            format!("span {text:?} allows no time (start equals end)"),
        ));
    }
    Ok(Span {
        days,
        start_min: start,
        length_min,
    })
}

impl Calendar {
    pub fn parse(raw: &RawCalendar) -> Result<Calendar, RequestError> {
        let tz: Tz = raw
            .timezone
            .parse()
            .map_err(|_| err(FIELD, format!("unknown time zone {:?}", raw.timezone)))?;
        if raw.spans.is_empty() {
            return Err(err(FIELD, "no span: a calendar must allow some hours"));
        }
        let spans = raw
            .spans
            .iter()
            .map(|s| span(s))
            .collect::<Result<Vec<_>, _>>()?;
        if spans.iter().all(|s| s.days.iter().all(|d| !d)) {
            return Err(err(FIELD, "no day is allowed"));
        }
        Ok(Calendar { tz, spans })
    }

    /// The UTC instant of a local time, resolved through DST changes.
    fn instant(&self, local: NaiveDateTime) -> i64 {
        let mut t = local;
        // A gap is at most a few hours; step past it a quarter hour at a time.
        for _ in 0..24 {
            match self.tz.from_local_datetime(&t) {
                LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => {
                    return x.timestamp_millis()
                }
                LocalResult::None => t += Duration::minutes(15),
            }
        }
        t.and_utc().timestamp_millis()
    }

    /// `None` while `now` (UTC ms) is inside an allowed span; else the
    /// instant the next one begins.
    pub fn closed_until(&self, now: i64) -> Option<i64> {
        let local = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.with_timezone(&self.tz).date_naive())
            .unwrap_or_default();
        let mut next: Option<i64> = None;
        // A span that began the day before may still be open; the next one
        // is at most a week away.
        for offset in -1..=8i64 {
            let date: NaiveDate = local + Duration::days(offset);
            let weekday = date.weekday().num_days_from_monday() as usize;
            for s in self.spans.iter().filter(|s| s.days[weekday]) {
                let begin = date.and_hms_opt(0, 0, 0).unwrap_or_default()
                    + Duration::minutes(s.start_min as i64);
                let start = self.instant(begin);
                let end = self.instant(begin + Duration::minutes(s.length_min as i64));
                if start <= now && now < end {
                    return None;
                }
                if start > now {
                    next = Some(next.map_or(start, |n| n.min(start)));
                }
            }
        }
        next
    }

    /// `at` as the calendar's wall-clock time, e.g. `20:00 Europe/Berlin`.
    pub fn local(&self, at: i64) -> String {
        chrono::DateTime::from_timestamp_millis(at)
            .map(|t| {
                let t = t.with_timezone(&self.tz);
                format!("{:02}:{:02} {}", t.hour(), t.minute(), self.tz.name())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(tz: &str, spans: &[&str]) -> Result<Calendar, RequestError> {
        Calendar::parse(&RawCalendar {
            timezone: tz.into(),
            spans: spans.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn weekday_evenings_in_berlin_open_and_close_at_the_wall_clock_edges() {
        let c = cal("Europe/Berlin", &["Mon-Fri 20:00-06:00"]).unwrap();
        // Monday 2024-03-04, CET (UTC+1): closed at noon until 20:00 local.
        assert_eq!(
            c.closed_until(at("2024-03-04T11:00:00Z")),
            Some(at("2024-03-04T19:00:00Z"))
        );
        assert_eq!(c.closed_until(at("2024-03-04T19:00:00Z")), None);
        // Past midnight into Tuesday, the Monday span is still open.
        assert_eq!(c.closed_until(at("2024-03-05T04:59:00Z")), None);
        assert_eq!(
            c.closed_until(at("2024-03-05T05:00:00Z")),
            Some(at("2024-03-05T19:00:00Z"))
        );
        // Friday's span runs into Saturday; then closed until Monday.
        assert_eq!(c.closed_until(at("2024-03-09T04:00:00Z")), None);
        assert_eq!(
            c.closed_until(at("2024-03-09T06:00:00Z")),
            Some(at("2024-03-11T19:00:00Z"))
        );
    }

    #[test]
    fn spans_follow_the_wall_clock_across_dst_changes() {
        let c = cal("Europe/Berlin", &["01:00-03:30"]).unwrap();
        // 2024-03-31: clocks go from 02:00 CET to 03:00 CEST. The span
        // opens at 01:00 CET (00:00Z) and ends at 03:30 CEST (01:30Z).
        assert_eq!(
            c.closed_until(at("2024-03-30T23:00:00Z")),
            Some(at("2024-03-31T00:00:00Z"))
        );
        assert_eq!(c.closed_until(at("2024-03-31T01:29:00Z")), None);
        assert_eq!(
            c.closed_until(at("2024-03-31T01:30:00Z")),
            Some(at("2024-03-31T23:00:00Z")),
            "the next day opens at 01:00 CEST"
        );
        // A span starting inside the gap opens at the first valid minute.
        let gap = cal("Europe/Berlin", &["Sun 02:30-04:00"]).unwrap();
        assert_eq!(
            gap.closed_until(at("2024-03-30T12:00:00Z")),
            Some(at("2024-03-31T01:00:00Z")),
            "02:30 does not exist that night; 03:00 CEST is 01:00Z"
        );
        // 2024-10-27: 03:00 CEST back to 02:00 CET; an ambiguous start is
        // its first occurrence (02:30 CEST = 00:30Z).
        let fall = cal("Europe/Berlin", &["Sun 02:30-05:00"]).unwrap();
        assert_eq!(
            fall.closed_until(at("2024-10-26T12:00:00Z")),
            Some(at("2024-10-27T00:30:00Z"))
        );
    }

    #[test]
    fn impossible_or_malformed_calendars_are_refused_naming_the_problem() {
        let cases: [(&str, &[&str], &str); 7] = [
            ("Europe/Berlin", &[], "no span"),
            ("Mars/Olympus", &["20:00-06:00"], "unknown time zone"),
            ("UTC", &["10:00-10:00"], "allows no time"),
            ("UTC", &["Fun 10:00-11:00"], "unknown day"),
            ("UTC", &["10:00"], "expected HH:MM-HH:MM"),
            ("UTC", &["25:00-26:00"], "is not a time"),
            ("UTC", &["Mon 24:00-01:00"], "starts before 24:00"),
        ];
        for (tz, spans, want) in cases {
            let e = cal(tz, spans).expect_err(want);
            assert_eq!(e.field, "allowed_hours");
            assert!(e.message.contains(want), "{spans:?}: {}", e.message);
        }
        let all_day = cal("UTC", &["00:00-24:00"]).unwrap();
        assert_eq!(all_day.closed_until(at("2024-03-04T13:00:00Z")), None);
    }
}
