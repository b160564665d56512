//! Commands that talk to a running daemon over its API.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::list::time;
use super::{fail, Output, EXIT_FAILED, EXIT_INVALID, EXIT_USAGE};
use crate::client::Client;

pub(super) fn print_json(v: &Value) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            outln!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn plugin_push(client: &Client, name: &str, file: &Path) -> ExitCode {
    let wasm = match std::fs::read(file) {
        Ok(w) => w,
        Err(e) => {
            return fail(
                EXIT_INVALID,
                &crate::harness::HarnessError::Read {
                    path: file.display().to_string(),
                    source: e,
                },
            )
        }
    };
    match client.send_bytes(
        "PUT",
        &format!("/api/v1/plugins/{name}"),
        "application/wasm",
        &wasm,
    ) {
        Ok(v) => {
            outln!(
                "plugin {} version {} ({})",
                v["name"].as_str().unwrap_or(name),
                v["version"],
                v["digest"].as_str().unwrap_or("")
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn apply(client: &Client, file: &Path) -> ExitCode {
    let body = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                EXIT_INVALID,
                &crate::harness::HarnessError::Read {
                    path: file.display().to_string(),
                    source: e,
                },
            )
        }
    };
    let content_type = if file.extension().is_some_and(|e| e == "json") {
        "application/json"
    } else {
        "application/toml"
    };
    match client.send_bytes("POST", "/api/v1/workflows", content_type, &body) {
        Ok(v) => {
            outln!(
                "workflow {} version {}",
                v["name"].as_str().unwrap_or("?"),
                v["version"]
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn workflow_show(client: &Client, name: &str, version: Option<u32>) -> ExitCode {
    let path = match version {
        Some(v) => format!("/api/v1/workflows/{name}?version={v}"),
        None => format!("/api/v1/workflows/{name}"),
    };
    match client.get(&path) {
        Ok(v) => print_json(&v),
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn workflow_pause(client: &Client, name: &str, paused: bool) -> ExitCode {
    let action = if paused { "pause" } else { "unpause" };
    match client.post_json(&format!("/api/v1/workflows/{name}/{action}"), &json!({})) {
        Ok(v) => {
            outln!(
                "workflow {name} version {}: {}",
                v["version"],
                if paused { "paused" } else { "unpaused" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn run_window(client: &Client, workflow: &str, window: &str, output: Output) -> ExitCode {
    match client.post_json(
        &format!("/api/v1/workflows/{workflow}/runs"),
        &json!({ "window": window }),
    ) {
        Ok(v) if output == Output::Json => print_json(&v),
        Ok(v) => {
            outln!(
                "run {} of {} for window {} .. {}",
                v["id"],
                workflow,
                time(&v["window_start_ms"]),
                time(&v["window_end_ms"])
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn tenant_create(client: &Client, name: &str) -> ExitCode {
    match client.post_json("/api/v1/tenants", &json!({ "name": name })) {
        Ok(v) => {
            errln!("created tenant {name}; its first token (shown once):");
            outln!("{}", v["token"].as_str().unwrap_or(""));
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn token_create(client: &Client, label: &str) -> ExitCode {
    match client.post_json("/api/v1/tokens", &json!({ "label": label })) {
        Ok(v) => {
            errln!("created token {} (shown once):", v["id"]);
            outln!("{}", v["token"].as_str().unwrap_or(""));
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn delete(client: &Client, path: &str, done: &str) -> ExitCode {
    match client.send_bytes("DELETE", path, "application/json", b"") {
        Ok(_) => {
            outln!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn backfill_create(client: &Client, a: &super::BackfillArgs) -> ExitCode {
    let mut body = json!({
        "workflow": a.workflow,
        "mode": a.mode,
        "order": a.order,
        "rerun": a.rerun,
        "downstream": a.downstream,
        "priority": a.priority,
        "overlap": a.overlap,
        "dry_run": a.dry_run,
    });
    let fields = [
        ("start", a.start.as_ref().map(|v| json!(v))),
        ("end", a.end.as_ref().map(|v| json!(v))),
        ("dates", a.dates.as_ref().map(|v| json!(v))),
        ("parallelism", a.parallelism.map(|v| json!(v))),
        ("from_task", a.from_task.as_ref().map(|v| json!(v))),
        ("version", a.version.map(|v| json!(v))),
        ("max_failed_windows", a.max_failed_windows.map(|v| json!(v))),
        ("start_at", a.start_at.as_ref().map(|v| json!(v))),
        (
            "downstream_include",
            (!a.include_downstream.is_empty()).then(|| json!(a.include_downstream)),
        ),
        (
            "downstream_exclude",
            (!a.exclude_downstream.is_empty()).then(|| json!(a.exclude_downstream)),
        ),
        (
            "allowed_hours",
            a.timezone
                .as_ref()
                .map(|tz| json!({"timezone": tz, "spans": a.allowed_hours})),
        ),
        ("budget", super::estimate::budget_body(a)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    match client.post_json("/api/v1/backfills", &body) {
        Ok(v) if a.output == Output::Json => print_json(&v),
        Ok(v) if v["dry_run"] == true => {
            super::estimate::print_dry_run(&v);
            ExitCode::SUCCESS
        }
        Ok(v) => {
            outln!("backfill {} of {} started", v["backfill"]["id"], a.workflow);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn backfill_status(client: &Client, id: u64, output: Output) -> ExitCode {
    match client.get(&format!("/api/v1/backfills/{id}")) {
        Ok(v) if output == Output::Json => print_json(&v),
        Ok(v) => {
            let b = &v["backfill"];
            let p = &v["progress"];
            outln!(
                "backfill {id} of {}: {}; {} done ({} succeeded, {} failed, {} skipped, {} cancelled), {} running, {:.1} windows/s{}",
                b["request"]["workflow"].as_str().unwrap_or("?"),
                b["state"].as_str().unwrap_or("?"),
                p["done"],
                p["succeeded"],
                p["failed"],
                p["skipped"],
                p["cancelled"],
                p["running"],
                p["windows_per_second"].as_f64().unwrap_or(0.0),
                p["throttled"].as_str().map(|t| format!("; throttled: {t}")).unwrap_or_default()
            );
            super::estimate::print_status_cost(&v);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn backfill_action(client: &Client, id: u64, action: &str, output: Output) -> ExitCode {
    match client.post_json(&format!("/api/v1/backfills/{id}/{action}"), &json!({})) {
        Ok(v) if output == Output::Json => print_json(&v),
        Ok(v) => {
            outln!(
                "backfill {id}: {}",
                v["backfill"]["state"].as_str().unwrap_or("?")
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

/// Prints a backfill's consistency check; exit 1 if anything is off.
pub fn backfill_verify(client: &Client, id: u64, output: Output) -> ExitCode {
    let v = match client.post_json(&format!("/api/v1/backfills/{id}/verify"), &json!({})) {
        Ok(v) => v,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    let bad = v["inconsistent"].as_u64().unwrap_or(0);
    if output == Output::Json {
        print_json(&v);
    } else {
        outln!(
            "backfill {id}: {} windows, {} outputs: {} consistent, {bad} inconsistent",
            v["windows"],
            v["outputs"],
            v["consistent"]
        );
        for c in v["checks"].as_array().into_iter().flatten() {
            if c["consistent"].as_bool() == Some(true) {
                continue;
            }
            let at = c["window_start_ms"]
                .as_i64()
                .map(crate::schedule::format_utc)
                .unwrap_or_default();
            let mut what = Vec::new();
            if c["manifest"] != "current" {
                what.push(format!(
                    "manifest {}",
                    c["manifest"].as_str().unwrap_or("?")
                ));
            }
            for (field, label) in [
                ("missing", "missing"),
                ("size_mismatch", "size differs"),
                ("checksum_mismatch", "checksum differs"),
                ("extra", "extra"),
            ] {
                let names: Vec<&str> = c[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str())
                    .collect();
                if !names.is_empty() {
                    what.push(format!("{label}: {}", names.join(", ")));
                }
            }
            outln!(
                "  {} {}/{} [{}]: {}",
                at,
                c["workflow"].as_str().unwrap_or("?"),
                c["task"].as_str().unwrap_or("?"),
                c["connection"].as_str().unwrap_or("?"),
                what.join("; ")
            );
        }
    }
    if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a quotas response: each quota with its limit and, where one is
/// measured, the usage.
fn print_quotas(v: &Value, json: bool) {
    if json {
        outln!("{v:#}");
        return;
    }
    let usage = &v["usage"];
    let used = |q: &str| -> Option<&Value> {
        match q {
            "concurrent_attempts" => Some(&usage["running_attempts"]),
            "plugins" => Some(&usage["plugins"]),
            "dataset_bytes" => Some(&usage["dataset_bytes"]),
            "triggers_per_minute" => Some(&usage["trigger_tokens_left"]),
            _ => None,
        }
    };
    outln!("tenant {}", v["tenant"].as_str().unwrap_or("?"));
    outln!(
        "{:<26} {:>20} {:>14}  USAGE",
        "QUOTA",
        "LIMIT",
        "OVERRIDDEN"
    );
    if let Some(quotas) = v["quotas"].as_object() {
        for (name, limit) in quotas {
            let overridden = v["overrides"].get(name).is_some();
            let usage = match (name.as_str(), used(name)) {
                ("triggers_per_minute", Some(left)) => format!("{left} left"),
                (_, Some(u)) => u.to_string(),
                _ => String::new(),
            };
            outln!(
                "{name:<26} {limit:>20} {:>14}  {usage}",
                if overridden { "yes" } else { "" }
            );
        }
    }
    outln!(
        "fuel burned since start: {}; active runs: {}",
        usage["fuel_consumed"],
        usage["active_runs"]
    );
}

pub fn quotas(client: &Client, json: bool) -> ExitCode {
    match client.get("/api/v1/quotas") {
        Ok(v) => {
            print_quotas(&v, json);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn tenant_quotas(
    client: &Client,
    name: &str,
    set: &[String],
    unset: &[String],
    json: bool,
) -> ExitCode {
    let path = format!("/api/v1/tenants/{name}/quotas");
    let current = match client.get(&path) {
        Ok(v) => v,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    if set.is_empty() && unset.is_empty() {
        print_quotas(&current, json);
        return ExitCode::SUCCESS;
    }
    let mut overrides = current["overrides"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for kv in set {
        let Some((k, v)) = kv.split_once('=') else {
            errln!("error: --set {kv:?}: expected QUOTA=VALUE");
            return ExitCode::from(EXIT_USAGE);
        };
        let Ok(n) = v.trim().parse::<u64>() else {
            errln!("error: --set {kv:?}: {v:?} is not a non-negative integer");
            return ExitCode::from(EXIT_USAGE);
        };
        overrides.insert(k.trim().to_owned(), n.into());
    }
    for k in unset {
        overrides.remove(k);
    }
    let body = Value::Object(overrides).to_string();
    match client.send_bytes("PUT", &path, "application/json", body.as_bytes()) {
        Ok(v) => {
            print_quotas(&v, json);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn trigger(
    client: &Client,
    workflow: &str,
    payload: &str,
    key: Option<&str>,
    output: Output,
) -> ExitCode {
    let body = match payload.strip_prefix('@') {
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                errln!("error: reading the payload from {path}: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => payload.as_bytes().to_vec(),
    };
    if let Err(e) = serde_json::from_slice::<Value>(&body) {
        errln!("error: --payload is not JSON: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    match client.post_raw(
        &format!("/api/v1/workflows/{workflow}/trigger"),
        &body,
        &headers,
    ) {
        Ok(v) if output == Output::Json => print_json(&v),
        Ok(v) => {
            outln!(
                "run {} of {workflow} triggered: {}",
                v["run_id"],
                v["url"].as_str().unwrap_or("")
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

pub fn run_show(client: &Client, id: u64, output: Output) -> ExitCode {
    let run = match client.get(&format!("/api/v1/runs/{id}")) {
        Ok(v) => v,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    if output == Output::Json {
        return print_json(&run);
    }
    let r = if run["run"].is_object() {
        &run["run"]
    } else {
        &run
    };
    outln!(
        "run {} of {}: {} ({} trigger), window {} .. {}",
        r["id"],
        r["workflow"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
        r["trigger"].as_str().unwrap_or("?"),
        time(&r["window_start_ms"]),
        time(&r["window_end_ms"])
    );
    for t in r["tasks"].as_array().into_iter().flatten() {
        outln!(
            "  {:<24} {:<16} attempts {}{}",
            t["name"].as_str().unwrap_or("?"),
            t["state"].as_str().unwrap_or("?"),
            t["attempts"],
            t["last_error"]
                .as_str()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default()
        );
    }
    for a in run["attempts"].as_array().into_iter().flatten() {
        outln!(
            "  attempt {} #{}: {} {}",
            a["task"].as_str().unwrap_or("?"),
            a["attempt"],
            a["error_kind"].as_str().unwrap_or("ok"),
            a["message"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

pub fn run_action(client: &Client, path: &str) -> ExitCode {
    match client.post_json(path, &json!({})) {
        Ok(v) => {
            outln!("run {}: {}", v["id"], v["state"].as_str().unwrap_or("?"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

/// Polls a backfill and draws its progress until it ends.
pub fn backfill_watch(client: &Client, id: u64, every: std::time::Duration) -> ExitCode {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40.cyan/blue}] {pos}/{len} windows  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        let v = match client.get(&format!("/api/v1/backfills/{id}")) {
            Ok(v) => v,
            Err(e) => {
                bar.abandon();
                return fail(EXIT_FAILED, &e);
            }
        };
        let b = &v["backfill"];
        let p = &v["progress"];
        let state = b["state"].as_str().unwrap_or("?");
        let done = p["done"].as_u64().unwrap_or(0);
        bar.set_prefix(format!("backfill {id} {state}"));
        bar.set_length(p["estimated_total"].as_u64().unwrap_or(done).max(done));
        bar.set_position(done);
        let eta = p["eta_seconds"]
            .as_f64()
            .map(|s| {
                format!(
                    ", ETA {}",
                    humantime::format_duration(std::time::Duration::from_secs(s as u64))
                )
            })
            .unwrap_or_default();
        let throttled = p["throttled"]
            .as_str()
            .map(|t| format!(", throttled: {t}"))
            .unwrap_or_default();
        bar.set_message(format!(
            "{} failed, {} running, {:.1} windows/s{eta}{throttled}",
            p["failed"],
            p["running"],
            p["windows_per_second"].as_f64().unwrap_or(0.0)
        ));
        if matches!(state, "succeeded" | "failed" | "cancelled") {
            bar.finish();
            outln!(
                "backfill {id} {state}: {} succeeded, {} failed, {} skipped, {} cancelled",
                p["succeeded"],
                p["failed"],
                p["skipped"],
                p["cancelled"]
            );
            return if state == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            };
        }
        std::thread::sleep(every);
    }
}
