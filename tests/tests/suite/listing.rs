//! The API's lists and the endpoints added with them, through the real
//! binary: every listing command pages with `--limit/--after/--all`,
//! prints a table or the API's JSON, and the HTTP answers match.

use std::time::Duration;

use serde_json::Value;
use tidemark_tests::plugins::*;

use crate::daemon::{wait_for, Daemon, ADMIN};

fn json(d: &Daemon, args: &[&str]) -> Value {
    let (code, out, err) = d.cli(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn names(v: &Value, key: &str, field: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|i| match &i[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Pages one by one with `--after`, then all at once with `--all`, and
/// checks both see `want` in order.
fn pages_match(d: &Daemon, cmd: &[&str], key: &str, field: &str, want: &[&str]) {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..=want.len() {
        let mut args = cmd.to_vec();
        args.extend(["--limit", "1", "--output", "json"]);
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let v = json(d, &args);
        seen.extend(names(&v, key, field));
        after = match &v["next"] {
            Value::Null => break,
            Value::String(s) => Some(s.clone()),
            other => panic!("{cmd:?}: next {other}"),
        };
    }
    assert_eq!(seen, want, "{cmd:?} page by page");
    let mut args = cmd.to_vec();
    args.extend(["--limit", "1", "--all", "--output", "json"]);
    let v = json(d, &args);
    assert_eq!(names(&v, key, field), want, "{cmd:?} --all");
    assert_eq!(v["next"], Value::Null);
}

fn workflow(d: &Daemon, dir: &std::path::Path, name: &str, plugin: &str) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\npaused = true\n[schedule]\ncron = \"0 0 * * *\"\nstart = \"2024-01-01\"\n\
             [[tasks]]\nname = \"t\"\nplugin = \"{plugin}\"\n"
        ),
    )
    .unwrap();
    let (code, _, err) = d.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn every_list_pages_through_the_cli_and_the_real_daemon() {
    let data = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(data.path(), None, None);
    d.login_as_new_tenant("acme");
    for (name, file) in [("hello", HELLO), ("echo", ECHO), ("panic", PANIC)] {
        let (code, _, err) = d.cli(&["plugin", "push", name, file]);
        assert_eq!(code, 0, "{err}");
    }
    // A second version of echo (different bytes).
    let (code, _, err) = d.cli(&["plugin", "push", "echo", HELLO]);
    assert_eq!(code, 0, "{err}");
    pages_match(
        &d,
        &["plugin", "list"],
        "plugins",
        "digest",
        &[
            &digest(ECHO),
            &digest(HELLO),
            &digest(HELLO),
            &digest(PANIC),
        ],
    );
    pages_match(
        &d,
        &["plugin", "versions", "echo"],
        "versions",
        "version",
        &["1", "2"],
    );

    // Tables: a header, one line per item, and a hint on stderr when more.
    let (code, out, err) = d.cli(&["plugin", "list", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("NAME  VERSION  BYTES"), "{out}");
    assert!(lines[1].starts_with("echo  1"), "{out}");
    assert!(err.contains("more: --after 'echo:2'"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    for (name, plugin) in [("c", "hello"), ("a", "echo"), ("b", "panic")] {
        workflow(&d, dir.path(), name, plugin);
    }
    pages_match(
        &d,
        &["workflow", "list"],
        "workflows",
        "name",
        &["a", "b", "c"],
    );
    // Pause/unpause make versions; `show --version` reads an old one.
    let (code, out, err) = d.cli(&["workflow", "unpause", "a"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("workflow a version 2: unpaused"), "{out}");
    pages_match(
        &d,
        &["workflow", "versions", "a"],
        "versions",
        "version",
        &["1", "2"],
    );
    let v = json(&d, &["workflow", "show", "a", "--version", "1"]);
    assert_eq!(v["definition"]["paused"], true);
    let (code, out, _) = d.cli(&["workflow", "list"]);
    assert_eq!(code, 0);
    let a = out.lines().find(|l| l.starts_with("a ")).expect("row a");
    assert!(a.contains("false"), "a is unpaused: {out}");
    let (code, _, err) = d.cli(&["workflow", "pause", "a"]);
    assert_eq!(code, 0, "{err}");

    // A plugin version a workflow uses cannot go; an unused one can.
    let (code, _, err) = d.cli(&["plugin", "delete", "echo", "2"]);
    assert_eq!(code, 1, "echo 2 is what a runs");
    assert!(
        err.contains("plugin echo version 2 is used by task"),
        "{err}"
    );
    let (code, _, err) = d.cli(&["plugin", "delete", "echo", "1"]);
    assert_eq!(code, 0, "echo 1 is superseded: {err}");
    let (code, out, err) = d.cli(&["workflow", "delete", "c"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("workflow c deleted"), "{out}");
    let (code, out, err) = d.cli(&["plugin", "delete", "hello", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("plugin hello version 1 deleted"), "{out}");
    pages_match(&d, &["workflow", "list"], "workflows", "name", &["a", "b"]);
    pages_match(
        &d,
        &["plugin", "list"],
        "plugins",
        "digest",
        &[&digest(HELLO), &digest(PANIC)],
    );

    // Runs, their logs and a backfill's windows.
    let (code, out, err) = d.cli(&[
        "backfill",
        "create",
        "b",
        "--dates",
        "2024-03-01,2024-03-02,2024-03-03",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let (code, _, _) = d.cli(&["backfill", "watch", &id, "--interval", "50ms"]);
    assert_eq!(code, 1, "panic fails every window");
    let windows = json(
        &d,
        &[
            "backfill", "windows", &id, "--state", "failed", "--limit", "2", "--all", "--output",
            "json",
        ],
    );
    let windows = windows["windows"].as_array().unwrap().clone();
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert!(windows
        .windows(2)
        .all(|w| w[0]["window_start_ms"].as_i64() < w[1]["window_start_ms"].as_i64()));
    let (code, out, _) = d.cli(&["backfill", "windows", &id, "--state", "succeeded"]);
    assert_eq!(
        (code, out.lines().count()),
        (0, 1),
        "only the header: {out}"
    );
    let (code, out, err) = d.cli(&["backfill", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{id}  "))
            && l.contains(" b ")
            && l.contains("failed")),
        "{out}"
    );
    let runs = json(
        &d,
        &[
            "runs",
            "list",
            "b",
            "--from",
            "2024-03-02T00:00:00Z",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["window_start_ms"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1_709_337_600_000, 1_709_424_000_000]
    );
    let run = windows[0]["run_id"].to_string();
    let logs = json(
        &d,
        &[
            "runs", "logs", &run, "--task", "t", "--all", "--limit", "1", "--output", "json",
        ],
    );
    let lines = logs["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "the panicking task logged: {logs}");
    assert!(lines.iter().all(|l| l["task"] == "t"));
    let (code, out, err) = d.cli(&["runs", "logs", &run]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("TIME"), "{out}");

    // Tokens and tenants, and a malformed cursor named in the error.
    for label in ["ci", "laptop"] {
        let (code, _, err) = d.cli(&["token", "create", "--label", label]);
        assert_eq!(code, 0, "{err}");
    }
    let mine = json(&d, &["token", "list", "--output", "json"]);
    let labels = names(&mine, "tokens", "label");
    assert_eq!(labels.len(), 3, "{mine}");
    pages_match(
        &d,
        &["token", "list"],
        "tokens",
        "label",
        &labels.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (code, _, err) = d.cli(&["token", "list", "--after", "first"]);
    assert_eq!(code, 1);
    assert!(err.contains("after: \"first\" is not a cursor"), "{err}");
    let (code, _, err) = d.cli_as(ADMIN, &["tenant", "create", "beta"]);
    assert_eq!(code, 0, "{err}");
    let tenants = {
        let (code, out, err) = d.cli_as(
            ADMIN,
            &[
                "tenant", "list", "--all", "--limit", "1", "--output", "json",
            ],
        );
        assert_eq!(code, 0, "{err}");
        names(&serde_json::from_str(&out).unwrap(), "tenants", "name")
    };
    assert_eq!(tenants, vec!["acme", "beta"]);
    let (code, out, err) = d.cli_as(ADMIN, &["tenant", "tokens", "acme"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "header and 3 tokens: {out}");
    assert!(!out.contains("tm_"), "never a secret: {out}");
    let (code, _, err) = d.cli(&["tenant", "list"]);
    assert_eq!(code, 1, "a tenant token is not the admin's");
    assert!(err.contains("403") || err.contains("admin"), "{err}");

    // Health, the OpenAPI document and metrics from the running binary.
    let client = tidemark::client::Client::new(&d.url);
    let ready = ureq::get(&format!("{}/readyz", d.url)).call().unwrap();
    assert_eq!(ready.into_string().unwrap(), "ready");
    let doc = client.get("/api/v1/openapi.json").unwrap();
    assert!(doc["paths"]["/api/v1/plugins"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "after"));
    wait_for(
        "failed runs in the metrics",
        Duration::from_secs(10),
        || {
            let text = ureq::get(&format!("{}/metrics", d.url))
                .set("Authorization", &format!("Bearer {ADMIN}"))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .unwrap_or_default();
            text.lines().any(|l| {
                l.starts_with("tidemark_runs_ended_total{")
                    && l.contains("tenant=\"acme\"")
                    && l.contains("state=\"failed\"")
                    && l.ends_with(" 3")
            })
        },
    );
    assert_eq!(d.terminate(), 0);
}

fn digest(path: &str) -> String {
    tidemark::executor::digest(&std::fs::read(path).unwrap())
}
