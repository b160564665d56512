//! `tidemark task run` and `tidemark plugin check`, through the real binary.

use std::process::{Command, Output};

use tidemark_tests::plugins::*;
use tidemark_tests::{shared_cache_dir, tidemark_bin};

fn tidemark(args: &[&str]) -> Output {
    Command::new(tidemark_bin())
        .args(args)
        .env("TIDEMARK_CACHE_DIR", shared_cache_dir())
        .output()
        .expect("running tidemark")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn task_run_prints_log_and_outcome() {
    let out = tidemark(&[
        "task",
        "run",
        HELLO,
        "--window",
        "2024-03-31",
        "--tz",
        "Europe/Berlin",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("succeeded: hello"), "{stdout}");
    // 2024-03-31 in Berlin: 23 hours, from 2024-03-30T23:00Z.
    assert!(stdout.contains("1711839600000..1711922400000"), "{stdout}");
}

#[test]
fn task_run_spells_out_each_limit() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[SPIN, "--timeout", "200ms", "--fuel", "1000000000000000"],
            "deadline exceeded",
        ),
        (&[SPIN, "--fuel", "100000"], "fuel exhausted"),
        (&[HOG, "--memory", "16MiB"], "memory limit exceeded"),
        (&[CHATTY, "--log-limit", "32KiB"], "log limit exceeded"),
        (
            &[CHATTY, "-p", "mode=output", "--output-limit", "1MiB"],
            "output limit exceeded",
        ),
        (&[PANIC], "guest trap"),
        (&[FLAKY], "task error (retryable)"),
    ];
    for (args, kind) in cases {
        let mut full = vec!["task", "run"];
        full.extend_from_slice(args);
        let out = tidemark(&full);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("failed: {kind}")),
            "{args:?}: {stdout}"
        );
    }
}

#[test]
fn task_run_json_output() {
    let out = tidemark(&[
        "task",
        "run",
        FLAKY,
        "--attempt",
        "3",
        "-p",
        "fail_times=2",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["summary"], "succeeded on attempt 3");
    let out = tidemark(&["task", "run", PANIC, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "trap");
}

#[test]
fn task_run_with_data_dir_keeps_datasets_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let base = ["--window", "2024-03-01", "--data", data];
    for plugin in [ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD] {
        let mut args = vec!["task", "run", plugin];
        args.extend_from_slice(&base);
        let out = tidemark(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{plugin}: {}",
            text(&out.stdout)
        );
    }
    // Without --data, transform finds no input.
    let out = tidemark(&["task", "run", ETL_TRANSFORM, "--window", "2024-03-01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("no input"));
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    let cases: &[(&[&str], &str)] = &[
        (&["--tz", "Mars/Olympus"], "--tz"),
        (&["--window", "2024-02-30"], "--window"),
        (
            &["--window-start", "2024-03-01T00:00:00Z"],
            "--window-start and --window-end",
        ),
        (
            &[
                "--window-start",
                "2024-03-02T00:00:00Z",
                "--window-end",
                "2024-03-01T00:00:00Z",
            ],
            "must end after",
        ),
        (&["--memory", "lots"], "--memory"),
        (&["--timeout", "soon"], "--timeout"),
        (&["-p", "novalue"], "--param"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["task", "run", HELLO];
        full.extend_from_slice(args);
        let out = tidemark(&full);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn plugin_check_accepts_plugins_and_rejects_other_files() {
    let out = tidemark(&["plugin", "check", HELLO]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("implements tidemark:task/task"));

    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, "not wasm").unwrap();
    let out = tidemark(&["plugin", "check", bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("not a WebAssembly file"),
        "{}",
        text(&out.stderr)
    );

    let out = tidemark(&["plugin", "check", "/nonexistent/x.wasm"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("/nonexistent/x.wasm"));
}

#[test]
fn config_check_names_the_bad_key_and_shows_what_applies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tidemark.toml");
    std::fs::write(
        &file,
        "max_attempts = 4\ngrace = \"10s\"\n[quotas]\nweight = 2\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = tidemark(&["config", "check", "--config", path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("max_attempts = 4"), "{shown}");
    assert!(shown.contains("grace = \"10s\""), "{shown}");
    assert!(shown.contains("weight = 2"), "{shown}");
    // Environment over the file, flags over both.
    let out = Command::new(tidemark_bin())
        .args(["config", "check", "--config", path, "--grace", "1m"])
        .env("TIDEMARK_MAX_ATTEMPTS", "6")
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(
        shown.contains("max_attempts = 6") && shown.contains("grace = \"1m\""),
        "{shown}"
    );
    for (bad, message) in [
        ("listn = \"0.0.0.0:1\"", "unknown field `listn`"),
        ("[quotas]\nweight = 0", "quotas.weight: must be at least 1"),
        (
            "[log]\nformat = \"xml\"",
            "log.format: \"xml\" is not one of text, json",
        ),
    ] {
        std::fs::write(&file, bad).unwrap();
        let out = tidemark(&["config", "check", "--config", path]);
        assert_eq!(out.status.code(), Some(3), "{bad}");
        assert!(
            text(&out.stderr).contains(message),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
    // The documented example is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../tidemark.example.toml");
    let out = tidemark(&["config", "check", "--config", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // `serve` refuses the same way before touching anything.
    let out = tidemark(&[
        "serve",
        "--config",
        path,
        "--data",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!dir.path().join("d").exists());
}

/// Issue #13: output into a closed pipe (`tidemark ... | head`) panicked
/// with a backtrace; the CLI now ends quietly (stdout closed: success;
/// stderr closed: the command's own exit code).
#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    use std::process::Stdio;
    // Both streams: `config check` of a bad file writes its error to stderr.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listn = 1\n").unwrap();
    let bad = bad.to_str().unwrap();
    for (args, stream, code) in [
        (vec!["cli-reference"], "stdout", 0),
        (vec!["config", "check", "--config", bad], "stderr", 3),
    ] {
        let mut child = Command::new(tidemark_bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closing our end before the child writes makes its every write to
        // that stream fail with EPIPE: no race with the pipe's buffer.
        let other: Box<dyn std::io::Read> = if stream == "stdout" {
            drop(child.stdout.take());
            Box::new(child.stderr.take().unwrap())
        } else {
            drop(child.stderr.take());
            Box::new(child.stdout.take().unwrap())
        };
        let mut said = String::new();
        std::io::Read::read_to_string(&mut { other }, &mut said).unwrap();
        let status = child.wait().unwrap();
        assert!(!said.contains("panicked"), "{args:?}: {said}");
        assert_eq!(status.code(), Some(code), "{args:?}: {said}");
    }
}

/// Issue #13: `config check` quoted a malformed admin_token in toml's
/// error snippet.
#[test]
fn config_check_never_shows_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        "grace = \"1s\"\nadmin_token = s3cr3t-v4lue-0123456789\n",
    )
    .unwrap();
    let out = tidemark(&["config", "check", "--config", file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn the_cli_reference_is_current() {
    let out = tidemark(&["cli-reference"]);
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md")).unwrap();
    assert!(
        text(&out.stdout) == committed,
        "docs/cli.md is stale: run `tidemark cli-reference > docs/cli.md`"
    );
}
