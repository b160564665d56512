//! Cron schedules in a time zone, and the windows between their ticks.
//!
//! A window is the half-open interval `[tick, next tick)`, stored as UTC
//! instants (milliseconds). Ticks are computed on the zone's wall clock and
//! then mapped to instants by one rule for daylight-saving transitions:
//!
//! - **Skipped local times** (spring forward): a tick that falls in the gap
//!   fires at the first instant after the gap; if that coincides with the
//!   next tick, they are one tick. So a daily 02:30 job still runs once on
//!   that day (at 03:00), and an hourly schedule has a 23-hour day.
//! - **Repeated local times** (fall back): a tick fires once, at the first
//!   occurrence, unless the expression fires every hour (hour field `*`), in
//!   which case it fires at both occurrences. So a daily job runs once, and
//!   an hourly schedule has a 25-hour day of 25 one-hour windows.
//!
//! Expressions have 5 fields (`min hour day month weekday`) or 6 with
//! seconds first (a 7th, year, is allowed), or a macro (`@daily`, ...).
//! Numeric weekdays follow crontab: 0 or 7 is Sunday, 1 is Monday.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far wall-clock time can be from UTC-derived local time around a
/// transition; iteration starts this far back so no tick is missed.
const MARGIN_MS: i64 = 4 * 3_600_000;
/// Wall-clock ticks examined per lookup: the margin of a per-second
/// schedule is 14,400 ticks.
const MAX_STEPS: usize = 20_000;
/// The most windows [`Schedule::shift`] moves. Each step is a tick lookup,
/// so an unbounded `k` (an upstream offset of `i64::MIN` once stalled the
/// daemon for 2^63 steps) must be refused, not walked. Workflow validation
/// bounds upstream offsets by the same number.
pub const MAX_SHIFT: u64 = 10_000;

/// A window `[start, end)` in UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn duration_ms(&self) -> i64 {
        self.end - self.start
    }

    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A schedule that cannot be used; the message names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron expression {expr:?} has {fields} fields; expected 5 (minute hour day month \
         weekday), 6 (seconds first) or 7 (plus year), or a macro like @daily"
    )]
    FieldCount { expr: String, fields: usize },
    #[error("cron expression {expr:?}: {reason}")]
    Cron { expr: String, reason: String },
    /// Checked here because the cron crate's own message is wrong ("61"
    /// in the minute field says "Minutes must be less than 59").
    #[error("cron expression {expr:?}: {field} {value} is out of range {min}-{max}")]
    OutOfRange {
        expr: String,
        field: &'static str,
        value: String,
        min: u32,
        max: u32,
    },
    #[error("cron expression {expr:?} never fires")]
    NeverFires { expr: String },
    #[error("unknown time zone {0:?}: use an IANA name such as Europe/Berlin or UTC")]
    TimeZone(String),
}

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: cron::Schedule,
    tz: Tz,
    every_hour: bool,
}

impl Schedule {
    pub fn parse(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| ScheduleError::TimeZone(tz.to_owned()))?;
        let normalized = normalize(expr)?;
        let cron = cron::Schedule::from_str(&normalized).map_err(|e| ScheduleError::Cron {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })?;
        use cron::TimeUnitSpec;
        let every_hour = cron.hours().is_all();
        let s = Schedule {
            source: expr.trim().to_owned(),
            cron,
            tz,
            every_hour,
        };
        // An expression like "0 0 30 2 *" parses but has no ticks.
        if s.next_tick(0).is_none() {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_owned(),
            });
        }
        Ok(s)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// Maps one wall-clock tick to its instants (one, or two for a repeated
    /// hour of an every-hour expression), earliest first.
    fn instants(&self, local: NaiveDateTime) -> (Option<i64>, Option<i64>) {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => (Some(t.timestamp_millis()), None),
            LocalResult::Ambiguous(a, b) => {
                let second = self.every_hour.then(|| b.timestamp_millis());
                (Some(a.timestamp_millis()), second)
            }
            LocalResult::None => (self.gap_end(local), None),
        }
    }

    /// The first instant after a skipped stretch of wall-clock time.
    fn gap_end(&self, local: NaiveDateTime) -> Option<i64> {
        // Transitions are whole minutes; step until the clock exists again.
        let mut probe = local;
        for _ in 0..(4 * 60) {
            probe += chrono::Duration::minutes(1);
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                // The gap ends at a whole minute; back off to its start.
                let t = t.timestamp_millis();
                let secs_into_minute = (probe - probe.with_second0()).num_milliseconds();
                return Some(t - secs_into_minute);
            }
        }
        None
    }

    fn local(&self, t: i64) -> Option<NaiveDateTime> {
        DateTime::from_timestamp_millis(t).map(|d| d.with_timezone(&self.tz).naive_local())
    }

    /// UTC offset at `t`, seconds.
    fn offset_at(&self, t: i64) -> Option<i32> {
        use chrono::Offset;
        DateTime::from_timestamp_millis(t).map(|d| {
            self.tz
                .offset_from_utc_datetime(&d.naive_utc())
                .fix()
                .local_minus_utc()
        })
    }

    /// How far before (after, going backwards) `t`'s wall-clock time the
    /// iteration must start: a second when the offset is the same for hours
    /// around `t` (wall clock and instants then map one to one there),
    /// the full margin near a transition.
    fn margin(&self, t: i64) -> i64 {
        let o = self.offset_at(t);
        let stable = t.checked_sub(MARGIN_MS).map(|a| self.offset_at(a)) == Some(o)
            && t.checked_add(MARGIN_MS).map(|b| self.offset_at(b)) == Some(o);
        if stable {
            1000
        } else {
            MARGIN_MS
        }
    }

    /// The first tick strictly after `t`.
    pub fn next_tick(&self, t: i64) -> Option<i64> {
        let from = self.local(t.checked_sub(self.margin(t))?)?;
        for local in self
            .cron
            .after(&Utc.from_utc_datetime(&from))
            .take(MAX_STEPS)
        {
            let (a, b) = self.instants(local.naive_utc());
            for x in [a, b].into_iter().flatten() {
                if x > t {
                    return Some(x);
                }
            }
        }
        None
    }

    /// The last tick at or before `t`.
    pub fn tick_at_or_before(&self, t: i64) -> Option<i64> {
        let from = self.local(t.checked_add(self.margin(t))?)?;
        let mut ticks = self.cron.after(&Utc.from_utc_datetime(&from));
        for _ in 0..MAX_STEPS {
            let local = ticks.next_back()?;
            let (a, b) = self.instants(local.naive_utc());
            for x in [b, a].into_iter().flatten() {
                if x <= t {
                    return Some(x);
                }
            }
        }
        None
    }

    /// Whether `t` is exactly a tick.
    pub fn is_tick(&self, t: i64) -> bool {
        self.tick_at_or_before(t) == Some(t)
    }

    /// The window that contains `t`.
    pub fn window_containing(&self, t: i64) -> Option<Window> {
        let start = self.tick_at_or_before(t)?;
        let end = self.next_tick(start)?;
        Some(Window { start, end })
    }

    /// The window that starts at `start`, if `start` is a tick.
    pub fn window_at(&self, start: i64) -> Option<Window> {
        if !self.is_tick(start) {
            return None;
        }
        Some(Window {
            start,
            end: self.next_tick(start)?,
        })
    }

    /// Windows whose start lies in `[from, to)`, in time order.
    pub fn windows(&self, from: i64, to: i64) -> Windows<'_> {
        let first = if self.is_tick(from) {
            Some(from)
        } else {
            self.next_tick(from)
        };
        Windows {
            schedule: self,
            next_start: first.filter(|s| *s < to),
            to,
        }
    }

    /// The window `k` windows after (`k > 0`) or before (`k < 0`) `w`, or
    /// `None` when `|k|` exceeds [`MAX_SHIFT`] or time runs out of range.
    pub fn shift(&self, w: Window, k: i64) -> Option<Window> {
        let steps = k.unsigned_abs();
        if steps > MAX_SHIFT {
            return None;
        }
        let mut cur = w;
        for _ in 0..steps {
            cur = if k > 0 {
                Window {
                    start: cur.end,
                    end: self.next_tick(cur.end)?,
                }
            } else {
                let start = self.tick_at_or_before(cur.start.checked_sub(1)?)?;
                Window {
                    start,
                    end: cur.start,
                }
            };
        }
        Some(cur)
    }
}

/// Iterator over consecutive windows; see [`Schedule::windows`].
pub struct Windows<'a> {
    schedule: &'a Schedule,
    next_start: Option<i64>,
    to: i64,
}

impl Iterator for Windows<'_> {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        let start = self.next_start?;
        let end = self.schedule.next_tick(start)?;
        self.next_start = (end < self.to).then_some(end);
        Some(Window { start, end })
    }
}

trait Second0 {
    fn with_second0(&self) -> Self;
}

impl Second0 for NaiveDateTime {
    fn with_second0(&self) -> Self {
        use chrono::Timelike;
        self.with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(*self)
    }
}

/// Turns the accepted syntaxes into the cron crate's 6/7-field form with its
/// weekday names, so numeric weekdays mean what they mean in crontab.
fn normalize(expr: &str) -> Result<String, ScheduleError> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        return Ok(trimmed.to_owned());
    }
    let mut fields: Vec<String> = trimmed.split_whitespace().map(str::to_owned).collect();
    match fields.len() {
        5 => fields.insert(0, "0".into()),
        6 | 7 => {}
        n => {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_owned(),
                fields: n,
            })
        }
    }
    // A 5-field expression got its seconds inserted above: check only the
    // fields the user wrote, under the names they know.
    let written = if trimmed.split_whitespace().count() == 5 {
        1
    } else {
        0
    };
    for (text, spec) in fields.iter().zip(FIELDS.iter()).skip(written) {
        check_range(expr, text, spec)?;
    }
    fields[5] = weekday_names(&fields[5]).map_err(|reason| ScheduleError::Cron {
        expr: expr.to_owned(),
        reason,
    })?;
    Ok(fields.join(" "))
}

/// A field of the 6/7-field form: its name in messages and its range.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
}

const FIELDS: [FieldSpec; 7] = [
    FieldSpec {
        name: "second",
        min: 0,
        max: 59,
    },
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
    },
    FieldSpec {
        name: "day of month",
        min: 1,
        max: 31,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
    },
    // 0 and 7 are both Sunday, as in crontab.
    FieldSpec {
        name: "weekday",
        min: 0,
        max: 7,
    },
    // The cron crate's years.
    FieldSpec {
        name: "year",
        min: 1970,
        max: 2100,
    },
];

/// Checks every number of one field (`5`, `1-5`, `*/15`, `1,30`) against its
/// range. Names (`MON`, `JAN`) and anything else that is not a number are
/// left to the cron crate, whose messages for those are fine.
fn check_range(expr: &str, field: &str, spec: &FieldSpec) -> Result<(), ScheduleError> {
    let out_of_range = |value: &str| ScheduleError::OutOfRange {
        expr: expr.to_owned(),
        field: spec.name,
        value: value.to_owned(),
        min: spec.min,
        max: spec.max,
    };
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step.filter(|s| is_number(s)) {
            if step.parse::<u32>().map_or(true, |n| n == 0) {
                return Err(ScheduleError::Cron {
                    expr: expr.to_owned(),
                    reason: format!("{} step {step} must be at least 1", spec.name),
                });
            }
        }
        let ends: Vec<&str> = match base.split_once('-') {
            Some((a, b)) => vec![a, b],
            None => vec![base],
        };
        for end in ends.into_iter().filter(|s| is_number(s)) {
            // Digits that overflow u32 are out of range too.
            let ok = end
                .parse::<u32>()
                .is_ok_and(|n| (spec.min..=spec.max).contains(&n));
            if !ok {
                return Err(out_of_range(end));
            }
        }
    }
    Ok(())
}

const DAYS: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

fn weekday_names(field: &str) -> Result<String, String> {
    let day = |s: &str| -> Result<String, String> {
        match s.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(DAYS[n].to_owned()),
            Ok(n) => Err(format!(
                "weekday {n} is out of range 0-7 (0 and 7 are Sunday)"
            )),
            Err(_) => Ok(s.to_owned()),
        }
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        let base = match base.split_once('-') {
            // "5-7" would become FRI-SUN, which the cron crate reads as a
            // wrapping range; spell it out instead.
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(x), Ok(7)) if x <= 7 && step.is_none() => {
                    (x..=7).map(|n| DAYS[n]).collect::<Vec<_>>().join(",")
                }
                _ => format!("{}-{}", day(a)?, day(b)?),
            },
            None => day(base)?,
        };
        items.push(match step {
            Some(s) => format!("{base}/{s}"),
            None => base,
        });
    }
    Ok(items.join(","))
}

#[cfg(test)]
mod tests;

/// Parses an RFC 3339 instant, or a date meaning local midnight in `tz` (the
/// first instant after midnight where a zone skips midnight itself).
pub fn parse_instant_or_date(s: &str, tz: Tz) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        format!(
            "{s:?} is neither an RFC 3339 instant (2024-03-01T00:00:00Z) nor a date (2024-03-01)"
        )
    })?;
    local_midnight(day, tz).ok_or_else(|| format!("{s:?} is out of range"))
}

/// The first and last years schedules tick in (the cron crate's year field).
pub const FIRST_YEAR: i32 = 1970;
pub const LAST_YEAR: i32 = 2100;

/// The instants a schedule in `tz` can tick in: from local midnight of
/// January 1, [`FIRST_YEAR`] up to (excluding) that of [`LAST_YEAR`] + 1.
/// Outside it there are no windows, so a request for such times can only
/// be a mistake (a year 1 start silently began at 1970).
pub fn supported_span(tz: Tz) -> (i64, i64) {
    let new_year = |y| chrono::NaiveDate::from_ymd_opt(y, 1, 1).and_then(|d| local_midnight(d, tz));
    // Both midnights exist in every zone; the UTC instants are a fallback.
    (
        new_year(FIRST_YEAR).unwrap_or(0),
        new_year(LAST_YEAR + 1).unwrap_or(4_133_980_800_000),
    )
}

/// Midnight of `day` in `tz`, or the end of the gap where midnight is skipped.
pub fn local_midnight(day: chrono::NaiveDate, tz: Tz) -> Option<i64> {
    let mut t = day.and_hms_opt(0, 0, 0)?;
    for _ in 0..(4 * 60) {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return Some(dt.timestamp_millis());
        }
        t += chrono::Duration::minutes(1);
    }
    None
}

/// `t` (UTC ms) as an RFC 3339 UTC instant, for messages.
pub fn format_utc(t: i64) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}
