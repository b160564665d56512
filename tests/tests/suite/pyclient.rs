//! The Python client generated from `docs/openapi.json`
//! (`scripts/pyclient.sh`, openapi-python-client) against the real daemon:
//! `clients/python/backfill_example.py` creates a backfill, watches it to
//! its end and lists its failed windows, all through the generated code, so
//! the document describes what the daemon really answers.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tidemark_tests::plugins::*;

use super::daemon::{plugin_dir, Daemon};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, after generating the client (the generator is
/// installed once by scripts/setup.sh or by the script itself).
fn generated_client_python() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/pyclient.sh"))
        .output()
        .expect("running scripts/pyclient.sh");
    assert!(
        out.status.success(),
        "scripts/pyclient.sh failed (scripts/setup.sh installs openapi-python-client): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_generated_python_client_drives_a_backfill() {
    let python = generated_client_python();
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[HELLO, FLAKY]);
    let mut d = Daemon::start(data.path(), Some(plugins.path()), None);
    d.login_as_new_tenant("py");
    let (code, _, err) = d.cli(&["plugin", "push", "flaky", FLAKY]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d.cli(&["plugin", "push", "hello", HELLO]);
    assert_eq!(code, 0, "{err}");
    // `f` fails every window's only attempt, so every window fails and the
    // backfill ends `failed`.
    let def = data.path().join("wf.toml");
    std::fs::write(
        &def,
        "name = \"pyetl\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n\
         [[tasks]]\nname = \"f\"\nplugin = \"flaky\"\nparams = { fail_times = 1 }\nretries = 0\ndepends_on = [\"a\"]\n",
    )
    .unwrap();
    let (code, _, err) = d.cli(&["apply", "-f", def.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    let out = Command::new(&python)
        .arg(repo().join("clients/python/backfill_example.py"))
        .args([
            d.url.as_str(),
            d.token.as_deref().unwrap(),
            "pyetl",
            "2024-03-01T00:00:00Z",
            "2024-03-01T03:00:00Z",
        ])
        .env("PYTHONPATH", repo().join("clients/python/generated"))
        .output()
        .expect("running the Python example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let id = events[0]["created"].as_u64().expect("created");
    assert_eq!(events[1]["ended"], "failed", "{stdout}");
    assert_eq!(
        (events[1]["done"].as_u64(), events[1]["failed"].as_u64()),
        (Some(3), Some(3))
    );
    let failed = events[2]["failed_windows"]
        .as_array()
        .expect("failed windows");
    // Three windows over two pages of two, in window order.
    let starts: Vec<i64> = failed
        .iter()
        .map(|w| w["window_start_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(
        starts,
        vec![1_709_251_200_000, 1_709_254_800_000, 1_709_258_400_000]
    );
    assert!(failed
        .iter()
        .all(|w| w["workflow"] == "pyetl" && w["run_id"].is_u64()));
    // What the client saw is what the API says.
    let b = d.get(&format!("/api/v1/backfills/{id}"));
    assert_eq!(b["backfill"]["state"], "failed");
    assert_eq!(d.terminate(), 0);
}
