use super::*;
use crate::run::RunState;
use crate::schedule::Window;
use crate::workflow::{Catalog, PluginRef, RawWorkflow, WorkflowDef};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
/// 2024-03-04T00:00:00Z, a Monday.
const MON: i64 = 1_709_510_400_000;

struct Cat;
impl Catalog for Cat {
    fn has_plugin(&self, _: &PluginRef) -> bool {
        true
    }
    fn upstreams(&self, _: &str) -> Option<Vec<String>> {
        Some(vec![])
    }
}

fn wf(name: &str, cron: &str, upstream: Option<(&str, i64)>) -> WorkflowDef {
    let mut toml = format!(
        "name = \"{name}\"\n[schedule]\ncron = \"{cron}\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"a\"\nplugin = \"p\"\n[[tasks]]\nname = \"b\"\nplugin = \"p\"\ndepends_on = [\"a\"]\n"
    );
    if let Some((u, off)) = upstream {
        toml.push_str(&format!(
            "[[upstream]]\nworkflow = \"{u}\"\noffset = {off}\n"
        ));
    }
    RawWorkflow::from_toml(&toml)
        .unwrap()
        .validate(&Cat)
        .unwrap()
}

fn request(json: &str) -> RawBackfillRequest {
    serde_json::from_str(json).unwrap()
}

#[test]
fn rerun_modes_select_the_right_windows() {
    use RunState as S;
    let cases = [
        (Rerun::Missing, None, true),
        (Rerun::Missing, Some(S::Failed), true),
        (Rerun::Missing, Some(S::Cancelled), true),
        (Rerun::Missing, Some(S::Succeeded), false),
        (Rerun::Failed, None, false),
        (Rerun::Failed, Some(S::Failed), true),
        (Rerun::Failed, Some(S::Succeeded), false),
        (Rerun::All, None, true),
        (Rerun::All, Some(S::Failed), true),
        (Rerun::All, Some(S::Succeeded), true),
    ];
    for (rerun, latest, runs) in cases {
        assert_eq!(
            matches!(decide(rerun, latest), Decision::Run(_)),
            runs,
            "{rerun:?} {latest:?}"
        );
    }
    assert_eq!(
        decide(Rerun::Missing, Some(S::Succeeded)),
        Decision::Skip(SkipReason::AlreadySucceeded)
    );
    assert_eq!(Rerun::default(), Rerun::Missing);
}

/// Issue #13: ranges before the workflow's start were accepted, a year-1
/// start silently began at 1970 and year -5000 gave an empty plan.
#[test]
fn ranges_outside_the_schedule_are_refused_naming_the_field() {
    // Daily, first window 2024-01-01.
    let daily = wf("d", "0 0 * * *", None);
    let bad = [
        (
            r#"{"workflow":"d","start":"0001-01-01","end":"2024-03-05"}"#,
            "start: \"0001-01-01\" is outside the supported years 1970-2100",
        ),
        (
            r#"{"workflow":"d","start":"-5000-01-01","end":"2024-03-05"}"#,
            "start: \"-5000-01-01\" is outside the supported years 1970-2100",
        ),
        (
            r#"{"workflow":"d","start":"2024-03-01","end":"2101-01-02"}"#,
            "end: \"2101-01-02\" is outside the supported years",
        ),
        (
            r#"{"workflow":"d","dates":["2024-03-01","1969-12-31"]}"#,
            "dates: \"1969-12-31\" is outside the supported years",
        ),
        (
            r#"{"workflow":"d","start":"2023-01-01","end":"2023-02-01"}"#,
            "end: the range ends at \"2023-02-01\", before the workflow's first window (2024-01-01T00:00:00Z)",
        ),
        (
            r#"{"workflow":"d","start":"2023-12-30","end":"2024-01-03"}"#,
            "start: \"2023-12-30\" selects windows before the workflow's first window",
        ),
        (
            r#"{"workflow":"d","dates":["2024-01-02","2023-12-31T12:00:00Z"]}"#,
            "dates: \"2023-12-31T12:00:00Z\" is in a window before the workflow's first window",
        ),
    ];
    for (json, needle) in bad {
        let e = request(json).validate(&daily).unwrap_err().to_string();
        assert!(e.starts_with(needle), "{json}: {e}");
    }
    // A start inside the window before the first selects no earlier window;
    // the last supported window can be backfilled.
    for ok in [
        r#"{"workflow":"d","start":"2023-12-31T12:00:00Z","end":"2024-01-03"}"#,
        r#"{"workflow":"d","start":"2024-01-01","end":"2024-01-02"}"#,
        r#"{"workflow":"d","start":"2100-12-31","end":"2101-01-01"}"#,
        r#"{"workflow":"d","dates":["2024-01-01"]}"#,
    ] {
        assert!(request(ok).validate(&daily).is_ok(), "{ok}");
    }
}

#[test]
fn requests_validate_and_errors_name_the_field() {
    let daily = wf("d", "0 0 * * *", None);
    let spec =
        request(r#"{"workflow":"d","start":"2024-03-01","end":"2024-03-05","mode":"serial"}"#)
            .validate(&daily)
            .unwrap();
    assert_eq!(spec.parallelism, 1);
    assert_eq!(spec.priority, Priority::Low);
    let spec = request(
        r#"{"workflow":"d","dates":["2024-03-03","2024-03-01T12:00:00Z","2024-03-03T05:00:00Z"]}"#,
    )
    .validate(&daily)
    .unwrap();
    // Each date selects the window containing it; duplicates collapse.
    assert_eq!(
        spec.selection,
        Selection::Windows(vec![MON - 3 * D, MON - D])
    );
    let bad = [
        (r#"{"workflow":"d","start":"2024-03-01"}"#, "end:"),
        (r#"{"workflow":"d","end":"2024-03-01"}"#, "start:"),
        (r#"{"workflow":"d"}"#, "start:"),
        (
            r#"{"workflow":"d","start":"2024-03-05","end":"2024-03-01"}"#,
            "end: must be after start",
        ),
        (
            r#"{"workflow":"d","start":"2024-03-01","end":"2024-03-05","dates":["2024-03-01"]}"#,
            "dates:",
        ),
        (r#"{"workflow":"d","dates":[]}"#, "dates:"),
        (r#"{"workflow":"d","dates":["someday"]}"#, "dates:"),
        (
            r#"{"workflow":"d","start":"2024-03-01","end":"2024-03-05","mode":"serial","parallelism":4}"#,
            "parallelism:",
        ),
        (
            r#"{"workflow":"d","start":"2024-03-01","end":"2024-03-05","parallelism":0}"#,
            "parallelism:",
        ),
        (
            r#"{"workflow":"d","start":"2024-03-01","end":"2024-03-05","from_task":"zz"}"#,
            "from_task:",
        ),
        (
            r#"{"workflow":"d","start":"2024-03-01","end":"2024-03-05","max_failed_windows":0}"#,
            "max_failed_windows:",
        ),
    ];
    for (json, needle) in bad {
        let e = request(json).validate(&daily).unwrap_err().to_string();
        assert!(e.starts_with(needle), "{json}: {e}");
    }
    assert!(
        serde_json::from_str::<RawBackfillRequest>(r#"{"workflow":"d","paralelism":3}"#).is_err()
    );
}

fn drain(sel: &Selection, def: &WorkflowDef, order: Order, max: usize) -> (Vec<i64>, usize) {
    let mut cursor = sel.first_cursor(order);
    let mut starts = Vec::new();
    let mut segments = 0;
    while cursor != Cursor::Done {
        let (ws, next) = sel.next_segment(&def.schedule, order, cursor, max);
        assert!(ws.len() <= max);
        starts.extend(ws.iter().map(|w| w.start));
        cursor = next;
        segments += 1;
        assert!(segments < 10_000);
    }
    (starts, segments)
}

#[test]
fn cursors_yield_every_window_once_in_order_and_resume_exactly() {
    let hourly = wf("h", "0 * * * *", None);
    let sel = Selection::Range {
        start: MON,
        end: MON + 10 * H,
    };
    let (asc, segments) = drain(&sel, &hourly, Order::Asc, 4);
    assert_eq!(asc, (0..10).map(|i| MON + i * H).collect::<Vec<_>>());
    assert_eq!(segments, 3);
    let (desc, _) = drain(&sel, &hourly, Order::Desc, 4);
    assert_eq!(desc, (0..10).rev().map(|i| MON + i * H).collect::<Vec<_>>());
    // A range that starts inside a window selects windows starting in it.
    let (mid, _) = drain(
        &Selection::Range {
            start: MON + 1,
            end: MON + 3 * H,
        },
        &hourly,
        Order::Asc,
        100,
    );
    assert_eq!(mid, [MON + H, MON + 2 * H]);
    let list = Selection::Windows(vec![MON, MON + 5 * H, MON + 7 * H]);
    assert_eq!(
        drain(&list, &hourly, Order::Asc, 2).0,
        [MON, MON + 5 * H, MON + 7 * H]
    );
    assert_eq!(
        drain(&list, &hourly, Order::Desc, 2).0,
        [MON + 7 * H, MON + 5 * H, MON]
    );
}

#[test]
fn a_million_window_range_costs_one_segment_up_front() {
    let minutely = wf("m", "* * * * *", None);
    let sel = Selection::Range {
        start: MON,
        end: MON + 1_000_000 * 60_000,
    };
    let (ws, cursor) = sel.next_segment(
        &minutely.schedule,
        Order::Desc,
        sel.first_cursor(Order::Desc),
        100,
    );
    assert_eq!(ws.len(), 100);
    assert_eq!(ws[0].start, MON + 999_999 * 60_000);
    assert_eq!(cursor, Cursor::Before(ws[99].start));
}

#[test]
fn cascade_follows_dependencies_across_grains() {
    let events = wf("events", "0 * * * *", None);
    let report = wf("report", "0 0 * * *", Some(("events", 0)));
    let summary = wf("summary", "0 0 * * 1", Some(("report", 0)));
    let unrelated = wf("other", "0 0 * * *", None);
    let defs = [&events, &report, &summary, &unrelated];
    // Two days of hourly events: Sunday and Monday.
    let repaired: Vec<Window> = (0..48)
        .map(|i| events.schedule.window_at(MON - D + i * H).unwrap())
        .collect();
    let steps = cascade(
        &defs,
        "events",
        &repaired,
        Downstream::Transitive,
        &CascadeScope::all(),
    );
    let shape: Vec<(&str, usize, Vec<i64>)> = steps
        .iter()
        .map(|s| {
            (
                s.workflow.as_str(),
                s.depth,
                s.windows.iter().map(|w| w.start).collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("report", 1, vec![MON - D, MON]),
            // Sunday belongs to the week starting Monday Feb 26, Monday to the next.
            ("summary", 2, vec![MON - 7 * D, MON]),
        ]
    );
    let direct = cascade(
        &defs,
        "events",
        &repaired,
        Downstream::Direct,
        &CascadeScope::all(),
    );
    assert_eq!(direct.len(), 1);
    assert!(cascade(
        &defs,
        "events",
        &repaired,
        Downstream::None,
        &CascadeScope::all()
    )
    .is_empty());
    // "Yesterday's window": a report for day X reads events of day X-1, so
    // repairing Sunday and Monday re-runs Monday's and Tuesday's reports.
    let next_day = wf("next", "0 0 * * *", Some(("events", -1)));
    let steps = cascade(
        &[&events, &next_day],
        "events",
        &repaired,
        Downstream::Direct,
        &CascadeScope::all(),
    );
    assert_eq!(
        steps[0].windows.iter().map(|w| w.start).collect::<Vec<_>>(),
        [MON, MON + D]
    );
}

/// events → report → summary, and events → audit: a launch's scope.
fn scoped_graph() -> [WorkflowDef; 5] {
    [
        wf("events", "0 * * * *", None),
        wf("report", "0 0 * * *", Some(("events", 0))),
        wf("summary", "0 0 * * 1", Some(("report", 0))),
        wf("audit", "0 0 * * *", Some(("events", 0))),
        wf("other", "0 0 * * *", None),
    ]
}

fn names(steps: &[CascadeStep]) -> Vec<&str> {
    steps.iter().map(|s| s.workflow.as_str()).collect()
}

fn scope(include: &[&str], exclude: &[&str]) -> Result<CascadeScope, RequestError> {
    let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    CascadeScope::parse(
        Downstream::Transitive,
        "events",
        &own(include),
        &own(exclude),
    )
}

#[test]
fn a_scope_adds_only_what_it_allows_and_stops_at_what_it_leaves_out() {
    let g = scoped_graph();
    let defs: Vec<&WorkflowDef> = g.iter().collect();
    let repaired = vec![g[0].schedule.window_at(MON).unwrap()];
    let run = |s: &CascadeScope| cascade(&defs, "events", &repaired, Downstream::Transitive, s);
    assert_eq!(
        names(&run(&CascadeScope::all())),
        ["audit", "report", "summary"]
    );
    // Excluding report drops summary too: nothing it reads changed.
    let s = scope(&[], &["report"]).unwrap();
    s.check(&defs, "events", Downstream::Transitive).unwrap();
    assert_eq!(names(&run(&s)), ["audit"]);
    let s = scope(&["report", "summary"], &[]).unwrap();
    s.check(&defs, "events", Downstream::Transitive).unwrap();
    assert_eq!(names(&run(&s)), ["report", "summary"]);
    // The windows a kept workflow adds do not change with the scope.
    assert_eq!(run(&s)[0].windows, run(&CascadeScope::all())[1].windows);
}

#[test]
fn a_scope_naming_what_the_cascade_cannot_reach_is_refused_by_field() {
    let g = scoped_graph();
    let defs: Vec<&WorkflowDef> = g.iter().collect();
    let check = |s: CascadeScope, mode| s.check(&defs, "events", mode).unwrap_err();
    let e = check(scope(&["nope"], &[]).unwrap(), Downstream::Transitive);
    assert_eq!(e.field, "downstream_include");
    assert!(e.message.contains("\"nope\" does not exist"), "{e}");
    let e = check(scope(&[], &["other"]).unwrap(), Downstream::Transitive);
    assert_eq!(e.field, "downstream_exclude");
    assert!(e.message.contains("\"other\" is not downstream"), "{e}");
    let e = check(scope(&["summary"], &[]).unwrap(), Downstream::Direct);
    assert!(e.message.contains("not directly downstream"), "{e}");
    // summary is reached only through report, which include leaves out.
    let e = check(scope(&["summary"], &[]).unwrap(), Downstream::Transitive);
    assert!(e.message.contains("only through"), "{e}");
    let e = scope(&["report"], &["report"]).unwrap_err();
    assert_eq!(e.field, "downstream_exclude");
    let e = scope(&["events"], &[]).unwrap_err();
    assert!(e.message.contains("selected workflow"), "{e}");
    let e = CascadeScope::parse(Downstream::None, "events", &["report".into()], &[]).unwrap_err();
    assert_eq!(e.field, "downstream_include");
    assert!(
        e.message.contains("downstream to direct or transitive"),
        "{e}"
    );
}
