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
    // Downstream of the example ETL, for the upstream/downstream views.
    apply(
        &d,
        &default,
        defs.path(),
        "name = \"etl-daily\"\npaused = true\n[schedule]\ncron = \"0 0 * * *\"\ntimezone = \"Europe/Berlin\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"t\"\nplugin = \"hello\"\n[[upstream]]\nworkflow = \"etl\"\n",
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

    // A failed run of `fragile` (its first attempt fails) for the browser to
    // retry from the run page.
    let (code, out, err) = d.cli_as(
        &default,
        &[
            "run-window",
            "fragile",
            "2024-04-01T00:00:00Z",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let retry_run = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_u64()
        .expect("a run id");
    let client = tidemark::client::Client::new(&d.url).with_token(Some(default.clone()));
    super::daemon::wait_for(
        "the run to fail",
        std::time::Duration::from_secs(60),
        || {
            client
                .get(&format!("/api/v1/runs/{retry_run}"))
                .is_ok_and(|v| v["run"]["state"] == "failed")
        },
    );

    let pages = [
        "workflows",
        "workflow",
        "grid",
        "launcher-preview",
        "backfill",
        "run",
        "admin",
    ];
    for s in pages {
        let _ = std::fs::remove_file(screenshots().join(format!("{s}.png")));
    }
    node_script(
        "e2e/console.test.mjs",
        &[
            ("TIDEMARK_URL", d.url.clone()),
            ("DEFAULT_TOKEN", default.clone()),
            ("OTHER_TOKEN", other.clone()),
            ("ADMIN_TOKEN", ADMIN.to_owned()),
            ("RETRY_RUN", retry_run.to_string()),
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
            // The gap repair proposed from the workflow page, awaiting approval.
            ("fragile".into(), "paused".into(), 0, 0, "asc".into()),
            ("etl-daily".into(), "cancelled".into(), 0, 0, "asc".into()),
        ]
    );
    let waited = &backfills[3]["backfill"];
    assert_eq!(
        waited["request"]["allowed_hours"]["timezone"], "UTC",
        "{waited}"
    );
    assert!(waited["request"].get("start_at").is_none(), "{waited}");
    // The retry the browser asked for, in the run's provenance.
    let why = d.get(&format!("/api/v1/runs/{retry_run}/why"));
    assert_eq!(why["retries"].as_array().map(Vec::len), Some(1), "{why}");
    assert_eq!(why["retries"][0]["requested_by"]["kind"], "token", "{why}");
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

/// A backfill of 1,000,000 minutely windows, all with records (every
/// hundredth failed, every seventh skipped), drawn by the console: the
/// browser gets bucket counts, never the rows. `strip.test.mjs` prints the
/// strip response's size and time.
#[test]
fn console_draws_the_strip_of_a_million_windows() {
    use tidemark::store::{BackfillWindow, Changes, SledStore, StateStore, WindowState};
    const T0: i64 = 1_577_836_800_000; // 2020-01-01T00:00:00Z
    const N: i64 = 1_000_000;
    const MIN: i64 = 60_000;

    let data = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(data.path(), None, None);
    d.login_as_new_tenant("big");
    let token = d.token.clone().unwrap();
    let (code, _, err) = d.cli(&["plugin", "push", "hello", HELLO]);
    assert_eq!(code, 0, "{err}");
    let defs = tempfile::tempdir().unwrap();
    apply(
        &d,
        &token,
        defs.path(),
        "name = \"minutely\"\npaused = true\n[schedule]\ncron = \"* * * * *\"\nstart = \"2020-01-01\"\n\
         [[tasks]]\nname = \"t\"\nplugin = \"hello\"\n",
    );
    // And 10,000 real runs for the grid.
    apply(
        &d,
        &token,
        defs.path(),
        "name = \"grid10k\"\npaused = true\n[schedule]\ncron = \"* * * * *\"\nstart = \"2020-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n[[tasks]]\nname = \"b\"\nplugin = \"hello\"\ndepends_on = [\"a\"]\n",
    );
    let client = tidemark::client::Client::new(&d.url).with_token(Some(token.clone()));
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let created = client
        .post_json(
            "/api/v1/backfills",
            &serde_json::json!({"workflow": "minutely", "start": iso(T0), "end": iso(T0 + N * MIN)}),
        )
        .expect("create the backfill");
    let id = created["backfill"]["id"].as_u64().unwrap();
    client
        .post_json(&format!("/api/v1/backfills/{id}/cancel"), &Value::Null)
        .expect("cancel it");
    let grid = client
        .post_json(
            "/api/v1/backfills",
            &serde_json::json!({"workflow": "grid10k", "start": iso(T0), "end": iso(T0 + 10_000 * MIN), "parallelism": 64}),
        )
        .expect("create the grid's backfill");
    let grid = grid["backfill"]["id"].as_u64().unwrap();
    super::daemon::wait_for(
        "10,000 windows to succeed",
        std::time::Duration::from_secs(300),
        || d.get(&format!("/api/v1/backfills/{grid}"))["backfill"]["state"] == "succeeded",
    );
    assert_eq!(d.terminate(), 0);

    // Every window's record, written the way materialization writes them.
    let store = SledStore::open(&data.path().join("state")).unwrap();
    let started = std::time::Instant::now();
    for chunk in (0..N).collect::<Vec<_>>().chunks(20_000) {
        let mut changes = Changes::default();
        for &i in chunk {
            let state = match i {
                i if i % 100 == 0 => WindowState::Failed,
                i if i % 7 == 0 => WindowState::Skipped,
                _ => WindowState::Succeeded,
            };
            changes.backfill_windows.push((
                "big".into(),
                BackfillWindow {
                    backfill: id,
                    workflow: "minutely".into(),
                    window_start: T0 + i * MIN,
                    window_end: T0 + (i + 1) * MIN,
                    state,
                    run_id: None,
                    reason: format!("seeded as {state:?}"),
                },
            ));
        }
        store.apply(&changes).unwrap();
    }
    eprintln!(
        "wrote {N} window records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(store);

    let d = Daemon::start(data.path(), None, None);
    node_script(
        "e2e/strip.test.mjs",
        &[
            ("TIDEMARK_URL", d.url.clone()),
            ("TOKEN", token),
            ("BACKFILL", id.to_string()),
            ("SCREENSHOTS", screenshots().display().to_string()),
        ],
    );
}

/// The backfill page's "Verify outputs" button against a backfill that
/// published object-storage outputs (`fs` connection): `verify.test.mjs`
/// clicks it, deletes an object the Rust side names, and clicks again.
#[test]
fn console_verifies_a_backfills_object_storage_outputs() {
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[OBJECTS]);
    let d = Daemon::start(data.path(), Some(plugins.path()), None);
    let token = d.token.clone().expect("the default tenant's token");
    let (code, _, err) = d.cli_as(
        &token,
        &[
            "connection",
            "create",
            "lake",
            "--kind",
            "fs",
            "--config",
            "path=lake",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let defs = tempfile::tempdir().unwrap();
    apply(
        &d,
        &token,
        defs.path(),
        "name = \"checked\"\npaused = true\nconnections = [\"lake\"]\n\
         [schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"write\"\nplugin = \"objects\"\nparams = { objects = \"2\" }\n",
    );
    let (code, out, err) = d.cli_as(
        &token,
        &[
            "backfill",
            "create",
            "checked",
            "--start",
            "2024-03-01T00:00:00Z",
            "--end",
            "2024-03-01T02:00:00Z",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["backfill"]["id"]
        .as_u64()
        .unwrap();
    // Every window published (the verify CLI exits 0 only when consistent).
    super::daemon::wait_for(
        "the backfill's outputs",
        std::time::Duration::from_secs(60),
        || {
            let (code, out, _) = d.cli_as(
                &token,
                &["backfill", "verify", &id.to_string(), "--output", "json"],
            );
            code == 0 && serde_json::from_str::<Value>(&out).is_ok_and(|v| v["consistent"] == 2)
        },
    );
    let root = data.path().join("objects/default/lake");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(root.join("checked/write/window=20240301T010000Z/_manifest.json")).unwrap(),
    )
    .unwrap();
    let tamper = root.join(manifest["objects"][1]["key"].as_str().unwrap());
    assert!(tamper.exists());
    node_script(
        "e2e/verify.test.mjs",
        &[
            ("TIDEMARK_URL", d.url.clone()),
            ("TOKEN", token),
            ("BACKFILL", id.to_string()),
            ("TAMPER", tamper.display().to_string()),
            ("SCREENSHOTS", screenshots().display().to_string()),
        ],
    );
    assert!(!tamper.exists(), "the browser test deleted it");
}
