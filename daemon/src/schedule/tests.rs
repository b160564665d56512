use super::*;

const H: i64 = 3_600_000;

fn ms(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

fn sched(expr: &str, tz: &str) -> Schedule {
    Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("{e}"))
}

/// Windows starting within the given UTC span.
fn spans(s: &Schedule, from: &str, to: &str) -> Vec<(i64, i64)> {
    s.windows(ms(from), ms(to))
        .map(|w| (w.start, w.duration_ms()))
        .collect()
}

#[test]
fn berlin_daily_has_23_and_25_hour_days() {
    let s = sched("0 0 * * *", "Europe/Berlin");
    let spring = s.window_containing(ms("2024-03-31T12:00:00Z")).unwrap();
    assert_eq!(spring.start, ms("2024-03-30T23:00:00Z"));
    assert_eq!(spring.end, ms("2024-03-31T22:00:00Z"));
    let autumn = s.window_containing(ms("2024-10-27T12:00:00Z")).unwrap();
    assert_eq!(autumn.start, ms("2024-10-26T22:00:00Z"));
    assert_eq!(autumn.duration_ms(), 25 * H);
    // March 2024: 31 windows, one per local day, none missing or doubled.
    let march = spans(&s, "2024-02-29T23:00:00Z", "2024-03-31T22:00:00Z");
    assert_eq!(march.len(), 31);
    assert_eq!(march.iter().filter(|(_, d)| *d == 23 * H).count(), 1);
    assert!(march.iter().all(|(_, d)| *d == 24 * H || *d == 23 * H));
}

#[test]
fn berlin_hourly_has_23_and_25_windows_per_day() {
    let s = sched("0 * * * *", "Europe/Berlin");
    let spring = spans(&s, "2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z");
    assert_eq!(spring.len(), 23);
    assert!(spring.iter().all(|(_, d)| *d == H));
    let autumn = spans(&s, "2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z");
    assert_eq!(autumn.len(), 25);
    assert!(autumn.iter().all(|(_, d)| *d == H));
    // Both 02:00s of the repeated hour are ticks.
    assert!(s.is_tick(ms("2024-10-27T00:00:00Z")));
    assert!(s.is_tick(ms("2024-10-27T01:00:00Z")));
}

#[test]
fn ticks_in_skipped_and_repeated_hours_follow_the_rule() {
    let s = sched("30 2 * * *", "Europe/Berlin");
    // 02:30 does not exist on 2024-03-31: it fires at 03:00 CEST.
    assert_eq!(
        s.next_tick(ms("2024-03-30T12:00:00Z")),
        Some(ms("2024-03-31T01:00:00Z"))
    );
    // 02:30 happens twice on 2024-10-27: it fires once, at the first.
    assert_eq!(
        s.next_tick(ms("2024-10-26T12:00:00Z")),
        Some(ms("2024-10-27T00:30:00Z"))
    );
    assert_eq!(
        s.next_tick(ms("2024-10-27T00:30:00Z")),
        Some(ms("2024-10-28T01:30:00Z"))
    );
    let oct = spans(&s, "2024-10-20T00:00:00Z", "2024-11-01T00:00:00Z");
    assert_eq!(oct.len(), 12, "one window per day");
}

#[test]
fn new_york_daily_and_hourly_across_transitions() {
    let s = sched("0 0 * * *", "America/New_York");
    let spring = s.window_containing(ms("2024-03-10T12:00:00Z")).unwrap();
    assert_eq!(
        (spring.start, spring.duration_ms()),
        (ms("2024-03-10T05:00:00Z"), 23 * H)
    );
    let autumn = s.window_containing(ms("2024-11-03T12:00:00Z")).unwrap();
    assert_eq!(
        (autumn.start, autumn.duration_ms()),
        (ms("2024-11-03T04:00:00Z"), 25 * H)
    );
    let hourly = sched("0 * * * *", "America/New_York");
    assert_eq!(
        spans(&hourly, "2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z").len(),
        23
    );
    assert_eq!(
        spans(&hourly, "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z").len(),
        25
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // Lord Howe moves its clocks by 30 minutes: +11:00 in summer, +10:30 in
    // winter. DST ended 2024-04-07 02:00 -> 01:30, started 2024-10-06 02:00 -> 02:30.
    let daily = sched("0 0 * * *", "Australia/Lord_Howe");
    let end_dst = daily.window_containing(ms("2024-04-07T00:00:00Z")).unwrap();
    assert_eq!(end_dst.start, ms("2024-04-06T13:00:00Z"));
    assert_eq!(end_dst.duration_ms(), 24 * H + H / 2);
    let start_dst = daily.window_containing(ms("2024-10-06T00:00:00Z")).unwrap();
    assert_eq!(start_dst.start, ms("2024-10-05T13:30:00Z"));
    assert_eq!(start_dst.duration_ms(), 23 * H + H / 2);

    let half_hourly = sched("*/30 * * * *", "Australia/Lord_Howe");
    let long = spans(&half_hourly, "2024-04-06T13:00:00Z", "2024-04-07T13:30:00Z");
    assert_eq!(long.len(), 49);
    assert!(long.iter().all(|(_, d)| *d == H / 2));
    let short = spans(&half_hourly, "2024-10-05T13:30:00Z", "2024-10-06T13:00:00Z");
    assert_eq!(short.len(), 47);
    assert!(short.iter().all(|(_, d)| *d == H / 2));
}

#[test]
fn weekly_and_monthly() {
    // Monday 00:00 in Berlin: the week with the spring transition is 1 h short.
    let weekly = sched("0 0 * * 1", "Europe/Berlin");
    let w = weekly
        .window_containing(ms("2024-03-27T12:00:00Z"))
        .unwrap();
    assert_eq!(w.start, ms("2024-03-24T23:00:00Z"));
    assert_eq!(w.end, ms("2024-03-31T22:00:00Z"));
    // 0 and 7 are both Sunday, as in crontab.
    for sunday in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN"] {
        let s = sched(sunday, "UTC");
        assert_eq!(
            s.next_tick(ms("2024-03-01T00:00:00Z")),
            Some(ms("2024-03-03T00:00:00Z")),
            "{sunday}"
        );
    }
    let weekdays = sched("0 9 * * 1-5", "UTC");
    assert_eq!(
        spans(&weekdays, "2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z").len(),
        5
    );
    let weekend = sched("0 9 * * 6-7", "UTC");
    assert_eq!(
        spans(&weekend, "2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z").len(),
        2
    );

    let monthly = sched("0 0 1 * *", "UTC");
    let feb = monthly
        .window_containing(ms("2024-02-15T00:00:00Z"))
        .unwrap();
    assert_eq!(feb.duration_ms(), 29 * 24 * H);
    let monthly_berlin = sched("@monthly", "Europe/Berlin");
    let mar = monthly_berlin
        .window_containing(ms("2024-03-15T00:00:00Z"))
        .unwrap();
    assert_eq!(mar.duration_ms(), 31 * 24 * H - H);
}

#[test]
fn six_field_expressions_have_seconds_first() {
    let s = sched("30 0 * * * *", "UTC");
    assert_eq!(
        s.next_tick(ms("2024-03-01T00:00:00Z")),
        Some(ms("2024-03-01T00:00:30Z"))
    );
    assert_eq!(
        s.next_tick(ms("2024-03-01T00:00:30Z")),
        Some(ms("2024-03-01T01:00:30Z"))
    );
    let every_15s = sched("*/15 * * * * *", "UTC");
    assert_eq!(
        spans(&every_15s, "2024-03-01T00:00:00Z", "2024-03-01T00:01:00Z").len(),
        4
    );
}

#[test]
fn windows_tile_time_without_gaps() {
    let s = sched("0 */6 * * *", "America/New_York");
    let ws: Vec<Window> = s
        .windows(ms("2024-01-01T00:00:00Z"), ms("2025-01-01T00:00:00Z"))
        .collect();
    assert!(ws.windows(2).all(|p| p[0].end == p[1].start));
    // 366 days x 4, one tick lost in the spring gap? No: 02:00 is not a
    // tick of */6 (00, 06, 12, 18), so exactly 4 per local day.
    assert_eq!(ws.len(), 366 * 4);
    for w in &ws {
        assert_eq!(s.window_containing(w.start), Some(*w));
        assert_eq!(s.window_containing(w.end - 1), Some(*w));
        assert_eq!(s.window_at(w.start), Some(*w));
    }
    assert_eq!(s.window_at(ws[0].start + 1), None);
}

/// Issue #10: `shift` walked |k| windows one lookup at a time, so
/// `k = i64::MIN` stalled its caller; beyond MAX_SHIFT it now refuses at once.
#[test]
fn shift_beyond_the_bound_is_refused_without_walking() {
    let s = sched("* * * * * *", "UTC");
    let w = s.window_containing(ms("2024-03-01T00:00:00Z")).unwrap();
    // The just-too-far case first: the old code answered it (slowly) instead
    // of refusing, and stalled on the others.
    for k in [
        -(MAX_SHIFT as i64) - 1,
        MAX_SHIFT as i64 + 1,
        i64::MIN,
        i64::MAX,
    ] {
        assert_eq!(s.shift(w, k), None, "k = {k}");
    }
    let max = MAX_SHIFT as i64;
    assert_eq!(s.shift(w, max).unwrap().start, w.start + max * 1000);
    assert_eq!(s.shift(w, -max).unwrap().start, w.start - max * 1000);
}

/// A window at the start of representable time has no predecessor; shifting
/// back must not wrap around.
#[test]
fn shift_before_representable_time_is_none() {
    let s = sched("0 0 * * *", "UTC");
    let w = Window {
        start: i64::MIN,
        end: i64::MIN + 1,
    };
    assert_eq!(s.shift(w, -1), None);
}

#[test]
fn shift_moves_by_whole_windows() {
    let s = sched("0 0 * * *", "Europe/Berlin");
    let day = s.window_containing(ms("2024-03-31T12:00:00Z")).unwrap();
    let yesterday = s.shift(day, -1).unwrap();
    assert_eq!(
        yesterday,
        s.window_containing(ms("2024-03-30T12:00:00Z")).unwrap()
    );
    assert_eq!(s.shift(yesterday, 1), Some(day));
    assert_eq!(s.shift(day, 0), Some(day));
    assert_eq!(s.shift(day, 7).unwrap().start, ms("2024-04-06T22:00:00Z"));
}

#[test]
fn bad_expressions_and_zones_name_the_problem() {
    let err = |e: &str, tz: &str| Schedule::parse(e, tz).unwrap_err().to_string();
    assert!(err("0 * * *", "UTC").contains("has 4 fields"));
    assert!(err("61 * * * *", "UTC").contains("\"61 * * * *\""));
    assert!(err("0 0 * * 8", "UTC").contains("weekday 8"));
    assert!(err("0 0 30 2 *", "UTC").contains("never fires"));
    assert!(err("0 * * * *", "Europe/Atlantis").contains("Europe/Atlantis"));
    assert!(err("", "UTC").contains("has 0 fields"));
}

/// Issue #13: "61 * * * *" was refused with the cron crate's "Minutes must
/// be less than 59"; every field now names itself and its real range.
#[test]
fn out_of_range_fields_name_the_field_and_its_range() {
    let err = |e: &str| Schedule::parse(e, "UTC").unwrap_err().to_string();
    for (expr, message) in [
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month 0 is out of range 1-31"),
        ("0 0 32 * *", "day of month 32 is out of range 1-31"),
        ("0 0 1 13 *", "month 13 is out of range 1-12"),
        ("0 0 * 0 *", "month 0 is out of range 1-12"),
        ("0 0 * * 8", "weekday 8 is out of range 0-7"),
        ("0 0 * * 1-9", "weekday 9 is out of range 0-7"),
        ("5,70 * * * *", "minute 70 is out of range 0-59"),
        ("0 5,70 * * *", "hour 70 is out of range 0-23"),
        ("0 10-99 * * *", "hour 99 is out of range 0-23"),
        (
            "99999999999 * * * *",
            "minute 99999999999 is out of range 0-59",
        ),
        ("60 0 * * * *", "second 60 is out of range 0-59"),
        ("0 60 * * * *", "minute 60 is out of range 0-59"),
        ("0 0 0 * * * 1969", "year 1969 is out of range 1970-2100"),
        ("0 0 0 * * * 2101", "year 2101 is out of range 1970-2100"),
        ("*/0 * * * *", "minute step 0 must be at least 1"),
    ] {
        let e = err(expr);
        assert!(e.contains(message), "{expr}: {e}");
        assert!(!e.contains("must be less than"), "{expr}: {e}");
    }
    // The ends of every range are accepted.
    for ok in [
        "59 23 31 12 7",
        "0 0 1 1 0",
        "59 59 23 * * *",
        "*/59 * * * *",
        "0 0 0 1 1 * 2100",
        "0 0 * JAN-DEC MON-FRI",
    ] {
        assert!(Schedule::parse(ok, "UTC").is_ok(), "{ok}");
    }
}

#[test]
fn per_second_schedules_work_even_across_transitions() {
    let s = sched("* * * * * *", "Europe/Berlin");
    let t = ms("2024-03-01T12:00:00.500Z");
    assert_eq!(s.next_tick(t), Some(ms("2024-03-01T12:00:01Z")));
    assert_eq!(s.tick_at_or_before(t), Some(ms("2024-03-01T12:00:00Z")));
    // Around the spring-forward gap (01:00Z): still one-second windows.
    let near = spans(&s, "2024-03-31T00:59:58Z", "2024-03-31T01:00:02Z");
    assert_eq!(near.len(), 4);
    assert!(near.iter().all(|(_, d)| *d == 1000));
    assert!(Schedule::parse("* * * * * *", "UTC").is_ok());
}
