use std::collections::HashMap;
use std::time::Duration;

use super::*;

struct FakeCatalog {
    plugins: Vec<&'static str>,
    workflows: HashMap<&'static str, Vec<String>>,
}

impl Catalog for FakeCatalog {
    fn has_plugin(&self, plugin: &PluginRef) -> bool {
        match plugin {
            PluginRef::Latest(n) | PluginRef::Version(n, _) => self.plugins.contains(&n.as_str()),
            PluginRef::Digest(_) => true,
        }
    }
    fn upstreams(&self, name: &str) -> Option<Vec<String>> {
        self.workflows.get(name).cloned()
    }
    fn has_connection(&self, name: &str) -> bool {
        name == "lake"
    }
}

fn catalog() -> FakeCatalog {
    FakeCatalog {
        plugins: vec!["etl-extract", "etl-transform", "etl-load", "hello"],
        workflows: HashMap::from([("events", vec![]), ("report", vec!["events".to_string()])]),
    }
}

const ETL: &str = r#"
name = "etl"
description = "hourly ETL"
failure_strategy = "continue"
[schedule]
cron = "0 * * * *"
timezone = "Europe/Berlin"
start = "2024-03-01"

[[tasks]]
name = "load"
plugin = "etl-load"
depends_on = ["transform"]

[[tasks]]
name = "extract"
plugin = "etl-extract@2"
params = { events = 250, dataset = "events", fast = true }
retries = 3
retry_delay = "5s"
retry_backoff = "exponential"
retry_max_delay = "30s"
timeout = "1m"
fuel = 1000000
memory = "64MiB"

[[tasks]]
name = "transform"
plugin = "etl-transform"
depends_on = ["extract"]
"#;

fn parse(toml: &str) -> Result<WorkflowDef, DefinitionError> {
    RawWorkflow::from_toml(toml)?.validate(&catalog())
}

fn err(toml: &str) -> String {
    parse(toml).unwrap_err().to_string()
}

#[test]
fn a_full_definition_validates() {
    let wf = parse(ETL).unwrap();
    assert_eq!(wf.name, "etl");
    assert_eq!(wf.failure_strategy, FailureStrategy::Continue);
    assert!(wf.catchup);
    assert_eq!(wf.max_active_runs, 16);
    // 2024-03-01 00:00 in Berlin.
    assert_eq!(wf.start, 1_709_247_600_000);
    let order: Vec<&str> = wf.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(order, ["extract", "transform", "load"]);
    let extract = wf.task("extract").unwrap();
    assert_eq!(extract.plugin, PluginRef::Version("etl-extract".into(), 2));
    assert_eq!(
        extract.params,
        vec![
            ("dataset".into(), "events".into()),
            ("events".into(), "250".into()),
            ("fast".into(), "true".into())
        ]
    );
    assert_eq!(extract.timeout, Some(Duration::from_secs(60)));
    assert_eq!(extract.memory, Some(64 << 20));
    assert_eq!(wf.downstream_of("transform"), ["transform", "load"]);
    assert_eq!(
        wf.downstream_of("extract"),
        ["extract", "transform", "load"]
    );
}

#[test]
fn json_and_toml_mean_the_same() {
    let raw = RawWorkflow::from_toml(ETL).unwrap();
    let json = serde_json::to_vec(&raw).unwrap();
    assert_eq!(RawWorkflow::from_json(&json).unwrap(), raw);
}

#[test]
fn retry_backoff_is_fixed_or_exponential_with_a_cap() {
    let wf = parse(ETL).unwrap();
    let retry = &wf.task("extract").unwrap().retry;
    let delays: Vec<Option<u64>> = (1..=5)
        .map(|a| retry.delay_before(a).map(|d| d.as_secs()))
        .collect();
    assert_eq!(delays, [None, Some(5), Some(10), Some(20), None]);
    let capped = RetryPolicy {
        retries: 10,
        backoff: Backoff::Exponential {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(30),
        },
    };
    assert_eq!(capped.delay_before(6), Some(Duration::from_secs(30)));
    assert_eq!(capped.delay_before(11), Some(Duration::from_secs(30)));
    let fixed = &wf.task("load").unwrap().retry;
    assert_eq!(fixed.delay_before(2), None, "no retries by default");
}

#[test]
fn start_is_aligned_to_the_first_tick() {
    let wf =
        parse(&ETL.replace("start = \"2024-03-01\"", "start = \"2024-03-01T10:20:00Z\"")).unwrap();
    assert_eq!(wf.start, 1_709_290_800_000); // 11:00Z
}

#[test]
fn errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "cron = \"0 * * * *\"",
            "cron = \"0 * * *\"",
            "schedule.cron",
        ),
        (
            "timezone = \"Europe/Berlin\"",
            "timezone = \"Europe/Nowhere\"",
            "schedule.timezone",
        ),
        (
            "start = \"2024-03-01\"",
            "start = \"March\"",
            "schedule.start",
        ),
        (
            "start = \"2024-03-01\"",
            "start = \"2024-03-01\"\nend = \"2024-02-01\"",
            "schedule.end",
        ),
        ("name = \"etl\"", "name = \"etl etl\"", "name:"),
        (
            "plugin = \"etl-load\"",
            "plugin = \"nope\"",
            "tasks[0].plugin: unknown plugin nope",
        ),
        (
            "plugin = \"etl-load\"",
            "plugin = \"etl-load@x\"",
            "tasks[0].plugin",
        ),
        (
            "plugin = \"etl-load\"",
            "plugin = \"sha256:abc\"",
            "64 hex digits",
        ),
        (
            "depends_on = [\"transform\"]",
            "depends_on = [\"ghost\"]",
            "tasks[0].depends_on: unknown task \"ghost\"",
        ),
        ("timeout = \"1m\"", "timeout = \"soon\"", "tasks[1].timeout"),
        ("memory = \"64MiB\"", "memory = \"lots\"", "tasks[1].memory"),
        (
            "retry_backoff = \"exponential\"",
            "retry_backoff = \"random\"",
            "tasks[1].retry_backoff",
        ),
        ("fuel = 1000000", "fuel = 0", "tasks[1].fuel"),
        (
            "failure_strategy = \"continue\"",
            "failure_strategy = \"panic\"",
            "failure_strategy",
        ),
        (
            "name = \"transform\"",
            "name = \"extract\"",
            "duplicate task name",
        ),
        (
            "description = \"hourly ETL\"",
            "descripton = \"typo\"",
            "unknown field `descripton`",
        ),
        ("[schedule]", "schedule = 3\n[x]", "invalid TOML"),
    ];
    for (from, to, needle) in cases {
        assert!(ETL.contains(from), "{from}");
        let msg = err(&ETL.replacen(from, to, 1));
        assert!(msg.contains(needle), "{to}: {msg}");
    }
}

#[test]
fn task_cycles_are_reported_as_paths() {
    let cyclic = ETL.replacen(
        "plugin = \"etl-extract@2\"",
        "plugin = \"etl-extract@2\"\ndepends_on = [\"load\"]",
        1,
    );
    let msg = err(&cyclic);
    assert!(msg.starts_with("tasks form a cycle:"), "{msg}");
    assert!(
        msg.contains("extract -> load -> transform -> extract")
            || msg.contains("load -> transform -> extract -> load"),
        "{msg}"
    );
    let selfish = ETL.replacen(
        "depends_on = [\"extract\"]",
        "depends_on = [\"transform\"]",
        1,
    );
    assert_eq!(err(&selfish), "tasks form a cycle: transform -> transform");
}

const DAILY: &str = r#"
name = "NAME"
[schedule]
cron = "0 0 * * *"
start = "2024-03-01"
[[tasks]]
name = "t"
plugin = "hello"
"#;

fn with_upstream(name: &str, upstream: &str, offset: i64) -> String {
    format!(
        "{}\n[[upstream]]\nworkflow = \"{upstream}\"\noffset = {offset}\n",
        DAILY.replace("NAME", name)
    )
}

#[test]
fn upstream_dependencies() {
    let wf = parse(&with_upstream("weekly", "report", 0)).unwrap();
    assert_eq!(
        wf.upstream,
        vec![UpstreamDep {
            workflow: "report".into(),
            offset: 0
        }]
    );
    // Yesterday's window of itself is fine; its own window is not.
    assert!(parse(&with_upstream("daily", "daily", -1)).is_ok());
    assert!(err(&with_upstream("daily", "daily", 0)).contains("cycle"));
    assert!(err(&with_upstream("daily", "ghost", 0))
        .contains("upstream[0].workflow: unknown workflow \"ghost\""));
    // events <- report already exists; making events depend on report closes a cycle.
    assert_eq!(
        err(&with_upstream("events", "report", 0)),
        "workflow dependencies form a cycle: events -> report -> events"
    );
}

/// Issue #10: `offset.abs()` overflowed for i64::MIN, so the most negative
/// offset passed validation and the planner then walked 2^63 windows.
#[test]
fn extreme_upstream_offsets_are_refused_naming_the_field() {
    for offset in [i64::MIN, i64::MIN + 1, -10_001, 10_001, i64::MAX] {
        let e = err(&with_upstream("weekly", "report", offset));
        assert!(
            e.starts_with("upstream[0].offset: ") && e.contains("between -10000 and 10000"),
            "offset {offset}: {e}"
        );
    }
    assert!(parse(&with_upstream("weekly", "report", -10_000)).is_ok());
    assert!(parse(&with_upstream("weekly", "report", 10_000)).is_ok());
    assert!(err(&with_upstream("daily", "daily", i64::MIN)).contains("upstream[0].offset"));
}

#[test]
fn workflow_size_is_bounded() {
    let mut big = DAILY.replace("NAME", "big");
    for i in 0..=MAX_TASKS {
        big.push_str(&format!("[[tasks]]\nname = \"t{i}\"\nplugin = \"hello\"\n"));
    }
    assert!(err(&big).contains("at most 500"));
}

#[test]
fn output_checks_are_declared_after_window_or_off() {
    let with = |checks: &str, connections: &str| {
        ETL.replace(
            "failure_strategy = \"continue\"",
            &format!("failure_strategy = \"continue\"\n{connections}\n{checks}"),
        )
    };
    let lake = "connections = [\"lake\"]";
    assert_eq!(parse(ETL).unwrap().output_check, OutputCheckPolicy::Off);
    let on = parse(&with("[checks]\noutputs = \"after_window\"", lake)).unwrap();
    assert_eq!(on.output_check, OutputCheckPolicy::AfterWindow);
    let off = parse(&with("[checks]\noutputs = \"off\"", lake)).unwrap();
    assert_eq!(off.output_check, OutputCheckPolicy::Off);
    assert_eq!(
        parse(&with("[checks]", lake)).unwrap().output_check,
        OutputCheckPolicy::Off
    );
    let e = err(&with("[checks]\noutputs = \"always\"", lake));
    assert_eq!(
        e,
        "checks.outputs: \"always\" is not one of \"off\", \"after_window\""
    );
    let e = err(&with("[checks]\noutputs = \"after_window\"", ""));
    assert!(
        e.starts_with("checks.outputs: ") && e.contains("names no connection"),
        "{e}"
    );
    // A typo in the table is refused, not ignored.
    let e = err(&with("[checks]\noutput = \"after_window\"", lake));
    assert!(e.contains("unknown field `output`"), "{e}");
    // The declaration round-trips through JSON (the API and the store).
    let raw = RawWorkflow::from_toml(&with("[checks]\noutputs = \"after_window\"", lake)).unwrap();
    let json = serde_json::to_vec(&raw).unwrap();
    assert_eq!(RawWorkflow::from_json(&json).unwrap(), raw);
}

#[test]
fn repair_is_a_mode_or_a_table_with_a_lookback() {
    use crate::gap::{RepairMode, DEFAULT_LOOKBACK_MS};
    // `repair` is a top-level key: it goes before the first table.
    let with = |line: &str| ETL.replacen("[schedule]", &format!("{line}\n[schedule]"), 1);
    assert_eq!(parse(ETL).unwrap().repair, Default::default());
    let auto = parse(&with("repair = \"auto\"")).unwrap().repair;
    assert_eq!(
        (auto.mode, auto.lookback_ms),
        (RepairMode::Auto, DEFAULT_LOOKBACK_MS)
    );
    let table = parse(&with("repair = { mode = \"propose\", lookback = \"30d\" }"))
        .unwrap()
        .repair;
    assert_eq!(
        (table.mode, table.lookback_ms),
        (RepairMode::Propose, 30 * 86_400_000)
    );
    assert_eq!(
        err(&with("repair = \"sometimes\"")),
        "repair: \"sometimes\" is not one of \"off\", \"propose\", \"auto\""
    );
    assert_eq!(
        err(&with("repair = { mode = \"never\" }")),
        "repair.mode: \"never\" is not one of \"off\", \"propose\", \"auto\""
    );
    let e = err(&with("repair = { mode = \"auto\", lookback = \"5m\" }"));
    assert_eq!(e, "repair.lookback: \"5m\" must be between 1h and 366d");
    let e = err(&with("repair = { mode = \"auto\", lookback = \"soon\" }"));
    assert!(
        e.starts_with("repair.lookback: \"soon\" is not a duration"),
        "{e}"
    );
    let raw =
        RawWorkflow::from_toml(&with("repair = { mode = \"auto\", lookback = \"2d\" }")).unwrap();
    let json = serde_json::to_vec(&raw).unwrap();
    assert_eq!(RawWorkflow::from_json(&json).unwrap(), raw);
}
