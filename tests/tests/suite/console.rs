//! The web console in headless Chromium (Playwright) against the real
//! daemon: `console/e2e/console.test.mjs` signs in, browses, launches and
//! repairs backfills through the UI; this side prepares two tenants and then
//! checks that what the browser did really happened on the server.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tidemark_tests::plugins::*;

use super::daemon::{plugin_dir, Daemon, ADMIN};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Screenshots go beside the build (an artifact, never committed).
fn screenshots() -> PathBuf {
    tidemark_tests::tidemark_bin()
        .parent()
        .expect("profile dir")
        .join("console-screenshots")
}

fn apply(d: &Daemon, token: &str, dir: &std::path::Path, toml: &str) {
    let name = toml.split('"').nth(1).expect("a name");
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, toml).unwrap();
    let (code, _, err) = d.cli_as(token, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

pub fn node_script(script: &str, envs: &[(&str, String)]) {
    let console = repo().join("console");
    assert!(
        console.join("node_modules/playwright-core").exists(),
        "console/node_modules is missing: building the daemon installs it (scripts/console.sh)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: scripts/setup.sh installs Debian's chromium package"
    );
    let status = Command::new("node")
        .arg(console.join(script))
        .current_dir(&console)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CHROMIUM", &chromium)
        .status()
        .expect("running node (Node.js 20+ is needed for the console tests)");
    assert!(status.success(), "{script} failed: {status}");
}

#[test]
fn console_end_to_end_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[HELLO, ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD, FLAKY]);
    let d = Daemon::start(
        data.path(),
        Some(plugins.path()),
        Some(&repo().join("examples")),
    );
    let default = d.token.clone().expect("the default tenant's token");
    let defs = tempfile::tempdir().unwrap();
    // Fails each window's first attempt of `f`, so a retry repairs it.
    apply(
        &d,
        &default,
        defs.path(),
        "name = \"fragile\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n\
         [[tasks]]\nname = \"f\"\nplugin = \"flaky\"\nparams = { fail_times = 1 }\ndepends_on = [\"a\"]\n\
         [[tasks]]\nname = \"c\"\nplugin = \"hello\"\ndepends_on = [\"f\"]\n",
    );
    let (code, other, err) = d.cli_as(ADMIN, &["tenant", "create", "other"]);
    assert_eq!(code, 0, "{err}");
    let other = other.trim().to_owned();
    let (code, _, err) = d.cli_as(&other, &["plugin", "push", "hello", HELLO]);
    assert_eq!(code, 0, "{err}");
    apply(
        &d,
        &other,
        defs.path(),
        "name = \"secret-wf\"\npaused = true\n[schedule]\ncron = \"0 0 * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"t\"\nplugin = \"hello\"\n",
    );

    let _ = std::fs::remove_dir_all(screenshots());
    node_script(
        "e2e/console.test.mjs",
        &[
            ("TIDEMARK_URL", d.url.clone()),
            ("DEFAULT_TOKEN", default.clone()),
            ("OTHER_TOKEN", other.clone()),
            ("ADMIN_TOKEN", ADMIN.to_owned()),
            ("SCREENSHOTS", screenshots().display().to_string()),
        ],
    );

    // What the browser did, as the API sees it.
    let mut d = d;
    d.token = Some(default);
    let backfills: Vec<Value> = d.get("/api/v1/backfills")["backfills"]
        .as_array()
        .cloned()
        .unwrap();
    let summary: Vec<(String, String, u64, u64, String)> = backfills
        .iter()
        .map(|b| {
            let b = &b["backfill"];
            (
                b["request"]["workflow"].as_str().unwrap().to_owned(),
                b["state"].as_str().unwrap().to_owned(),
                b["succeeded"].as_u64().unwrap(),
                b["failed"].as_u64().unwrap(),
                b["request"]["order"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("etl".into(), "succeeded".into(), 24, 0, "desc".into()),
            ("fragile".into(), "succeeded".into(), 2, 0, "asc".into()),
        ]
    );
    let etl = d.get("/api/v1/workflows/etl");
    assert_eq!(etl["version"], 3, "paused and unpaused from the console");
    assert_eq!(etl["definition"]["paused"], false);
    d.token = Some(ADMIN.into());
    let tenants: Vec<String> = d.get("/api/v1/tenants")["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tenants, ["default", "other", "third"]);
    let tokens = d.get("/api/v1/tenants/third/tokens");
    let revoked: Vec<(String, bool)> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["label"].as_str().unwrap().to_owned(),
                t["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert!(revoked.contains(&("ci".into(), true)), "{revoked:?}");
    for s in [
        "workflows",
        "grid",
        "launcher-preview",
        "backfill",
        "run",
        "admin",
    ] {
        assert!(
            screenshots().join(format!("{s}.png")).exists(),
            "screenshot {s}"
        );
    }
}
