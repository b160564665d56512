//! `runs why`: a run's provenance, or what changed between two runs of one
//! window (`--compare`).

use std::process::ExitCode;

use serde_json::Value;

use super::list::time;
use super::remote::print_json;
use super::{fail, Output, EXIT_FAILED};
use crate::client::Client;

pub fn why(client: &Client, id: u64, compare: Option<u64>, output: Output) -> ExitCode {
    let path = match compare {
        Some(other) => format!("/api/v1/runs/{id}/compare/{other}"),
        None => format!("/api/v1/runs/{id}/why"),
    };
    let v = match client.get(&path) {
        Ok(v) => v,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    if output == Output::Json {
        return print_json(&v);
    }
    if compare.is_none() {
        print_why(&v);
        return ExitCode::SUCCESS;
    }
    let diffs = v["differences"].as_array().cloned().unwrap_or_default();
    outln!(
        "runs {} and {} of {}, window {}: {}",
        v["this"]["run_id"],
        v["other"]["run_id"],
        v["this"]["workflow"].as_str().unwrap_or("?"),
        time(&v["this"]["window_start_ms"]),
        match diffs.len() {
            0 => "nothing changed".to_owned(),
            n => format!("{n} difference(s)"),
        }
    );
    let side = |x: &Value| x.as_str().unwrap_or("(absent)").to_owned();
    for d in &diffs {
        outln!(
            "  {:<36} {} -> {}",
            d["field"].as_str().unwrap_or("?"),
            side(&d["this"]),
            side(&d["other"])
        );
    }
    ExitCode::SUCCESS
}

/// A `RequestedBy` body in one phrase: `token 3 (ci)`, `scheduler`.
fn asker(by: &Value) -> String {
    match by["kind"].as_str() {
        Some("token") => format!(
            "token {} ({})",
            by["token_id"],
            by["label"].as_str().unwrap_or("")
        ),
        Some(k) => k.to_owned(),
        None => "?".to_owned(),
    }
}

fn print_why(v: &Value) {
    outln!(
        "run {} of {} v{}, window {} .. {}",
        v["run_id"],
        v["workflow"].as_str().unwrap_or("?"),
        v["version"],
        time(&v["window_start_ms"]),
        time(&v["window_end_ms"])
    );
    outln!("  why:          {}", v["summary"].as_str().unwrap_or("?"));
    outln!("  requested by: {}", asker(&v["requested_by"]));
    for r in v["retries"].as_array().into_iter().flatten() {
        outln!(
            "  retried:      {} by {}",
            time(&r["at_ms"]),
            asker(&r["requested_by"])
        );
    }
    for u in v["upstream"].as_array().into_iter().flatten() {
        outln!(
            "  upstream:     {} {} (run {})",
            u["workflow"].as_str().unwrap_or("?"),
            time(&u["window_start_ms"]),
            u["run_id"]
        );
    }
    for t in v["tasks"].as_array().into_iter().flatten() {
        outln!(
            "  task {}: plugin {} digest {}",
            t["task"].as_str().unwrap_or("?"),
            t["plugin"].as_str().unwrap_or("?"),
            t["plugin_digest"].as_str().unwrap_or("(not run)")
        );
        for r in t["reads"].as_array().into_iter().flatten() {
            outln!(
                "    read {} {} version {}",
                r["dataset"].as_str().unwrap_or("?"),
                time(&r["partition_ms"]),
                r["version"].as_str().unwrap_or("(absent)")
            );
        }
        if let Some(n) = t["reads_omitted"].as_u64().filter(|n| *n > 0) {
            outln!("    ... and {n} more partition(s)");
        }
    }
}
