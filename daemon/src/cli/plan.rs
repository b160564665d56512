//! A backfill's dry run as text: every window it would run or skip, what
//! each downstream workflow of the cascade adds (or, left out by
//! `--include-downstream` / `--exclude-downstream`, would have added), and
//! the estimate.

use serde_json::Value;

use super::list::time;

pub fn print(v: &Value) {
    let plan = &v["plan"];
    outln!("{:<24} {:<21} {:<5} REASON", "WORKFLOW", "WINDOW", "DO");
    for e in plan["entries"].as_array().into_iter().flatten() {
        outln!(
            "{:<24} {:<21} {:<5} {}",
            e["workflow"].as_str().unwrap_or("?"),
            time(&e["window_start_ms"]),
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
    super::estimate::print_estimate(&v["estimate"]);
}
