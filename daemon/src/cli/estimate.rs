//! Budgets and estimates in `backfill create` and `backfill status`: the
//! request's `budget` object from the flags, a dry run's plan, cascade and
//! estimate, and a backfill's estimate against what it spent.

use serde_json::{json, Map, Value};

/// The `budget` object of a request, if any limit was given.
pub fn budget_body(a: &super::BackfillArgs) -> Option<Value> {
    let mut b = Map::new();
    for (k, v) in [
        ("max_wall_seconds", a.max_wall),
        ("max_fuel", a.max_fuel),
        ("max_bytes", a.max_bytes),
    ] {
        if let Some(v) = v {
            b.insert(k.into(), json!(v));
        }
    }
    (!b.is_empty()).then_some(Value::Object(b))
}

/// `low..high (expected E)`, durations in seconds.
fn range(r: &Value, ms: bool) -> String {
    let f = |k: &str| {
        let v = r[k].as_u64().unwrap_or(0);
        if ms {
            format!("{:.1}s", v as f64 / 1000.0)
        } else {
            v.to_string()
        }
    };
    format!("{} (range {}..{})", f("expected"), f("low"), f("high"))
}

/// Prints a dry run's estimate: per workflow with what it rests on, then
/// the total.
pub fn print_estimate(e: &Value) {
    for w in e["workflows"].as_array().into_iter().flatten() {
        outln!(
            "estimate {} v{}: {} runs at parallelism {}; wall {}, task-runs {}, fuel {}, bytes {}",
            w["workflow"].as_str().unwrap_or("?"),
            w["version"],
            w["runs"],
            w["parallelism"],
            range(&w["wall_ms"], true),
            range(&w["task_runs"], false),
            range(&w["fuel"], false),
            range(&w["bytes"], false),
        );
        outln!(
            "  run duration rests on: {} ({} samples)",
            w["run_basis"].as_str().unwrap_or("?"),
            w["run_samples"]
        );
        for t in w["tasks"].as_array().into_iter().flatten() {
            outln!(
                "  task {}: {} ({} samples); per attempt {}, fuel {}, bytes {}",
                t["task"].as_str().unwrap_or("?"),
                t["basis"].as_str().unwrap_or("?"),
                t["samples"],
                range(&t["duration_ms"], true),
                range(&t["fuel"], false),
                range(&t["bytes"], false),
            );
        }
    }
    let t = &e["total"];
    outln!(
        "estimate total: wall {}, task-runs {}, fuel {}, bytes {}{}",
        range(&t["wall_ms"], true),
        range(&t["task_runs"], false),
        range(&t["fuel"], false),
        range(&t["bytes"], false),
        if e["truncated"] == true {
            " (covers the first windows of a truncated plan)"
        } else {
            ""
        }
    );
}

/// Prints a backfill's estimate against what it spent, and why it is
/// paused.
pub fn print_status_cost(v: &Value) {
    let a = &v["actual"];
    let e = &v["estimate"];
    let line = |label: &str, key: &str, ms: bool| {
        let actual = a[key].as_u64().unwrap_or(0);
        let actual = if ms {
            format!("{:.1}s", actual as f64 / 1000.0)
        } else {
            actual.to_string()
        };
        match e.is_null() {
            true => outln!("  {label}: {actual}"),
            false => outln!("  {label}: {actual}; estimated {}", range(&e[key], ms)),
        }
    };
    outln!("spent:");
    line("wall", "wall_ms", true);
    line("task-runs", "task_runs", false);
    line("fuel", "fuel", false);
    line("bytes", "bytes", false);
    if let Some(why) = v["backfill"]["pause_reason"].as_str() {
        outln!("paused: {why}");
    }
}

/// A dry run as text: every window it would run or skip, what each
/// downstream workflow of the cascade adds (or, left out by
/// `--include-downstream` / `--exclude-downstream`, would have added), and
/// the estimate.
pub fn print_dry_run(v: &Value) {
    let plan = &v["plan"];
    outln!("{:<24} {:<21} {:<5} REASON", "WORKFLOW", "WINDOW", "DO");
    for e in plan["entries"].as_array().into_iter().flatten() {
        outln!(
            "{:<24} {:<21} {:<5} {}",
            e["workflow"].as_str().unwrap_or("?"),
            super::list::time(&e["window_start_ms"]),
            e["action"].as_str().unwrap_or("?"),
            e["reason"].as_str().unwrap_or("")
        );
    }
    outln!(
        "plan: {} runs, {} skipped{}",
        plan["runs"],
        plan["skips"],
        if plan["truncated"] == true {
            " (truncated)"
        } else {
            ""
        }
    );
    if let Some(why) = v["waiting"].as_str() {
        outln!("{why}");
    }
    for c in plan["cascade"].as_array().into_iter().flatten() {
        let (verb, note) = if c["included"] == true {
            ("adds", "")
        } else {
            ("would add", " (left out by this launch)")
        };
        outln!(
            "cascade: {} (depth {}) {verb} {} window(s){note}",
            c["workflow"].as_str().unwrap_or("?"),
            c["depth"],
            c["windows"]
        );
    }
    print_estimate(&v["estimate"]);
}
