//! The output check a workflow declares (`[checks] outputs =
//! "after_window"`), on the real daemon: each window's published objects
//! are re-read once its run has ended, the result is kept with the output
//! (run detail, outputs listing) and counted per tenant, and changes made
//! behind Tidemark's back before the check runs are reported.
//!
//! A second task (`fetch`, calling a local server that holds its answer
//! until the test releases it) keeps the run open after `write` has
//! published, which is when the test tampers with the objects.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tidemark_tests::plugins::{FETCH, OBJECTS};

use crate::daemon::{plugin_dir, wait_for, Daemon, ADMIN};

/// 2024-03-01T00:00:00Z.
const DAY0: i64 = 1_709_251_200_000;
const H: i64 = 3_600_000;

/// An HTTP server that tells the test when a request arrived and answers
/// it only when the test says so.
struct Gate {
    port: u16,
    arrived: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn gate() -> Gate {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            // The request head is small; read until its blank line.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if arrived_tx.send(()).is_err() || release_rx.recv().is_err() {
                return;
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    Gate {
        port,
        arrived,
        release,
    }
}

impl Gate {
    /// Waits for the gate task's request; `before` runs while it is held.
    fn pass(&self, before: impl FnOnce()) {
        self.arrived
            .recv_timeout(Duration::from_secs(60))
            .expect("the gate task's request");
        before();
        self.release.send(()).unwrap();
    }
}

fn cli(d: &Daemon, token: &str, args: &[&str]) -> String {
    let (code, out, err) = d.cli_as(token, args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

fn metrics(d: &Daemon) -> String {
    ureq::get(&format!("{}/metrics", d.url))
        .set("authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// Runs one window and returns its run id.
fn run_window(d: &Daemon, token: &str, start: i64) -> u64 {
    let out = cli(
        d,
        token,
        &[
            "run-window",
            "checked",
            &crate::backfill::iso(start),
            "--output",
            "json",
        ],
    );
    serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("run id in {out}"))
}

/// The output of task `write` in run `id`'s detail (`null` until committed).
fn output(d: &Daemon, id: u64) -> Value {
    let detail = d.get(&format!("/api/v1/runs/{id}"));
    detail["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["task"] == "write").cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn a_declared_output_check_runs_after_each_window_and_reports_tampering() {
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[OBJECTS, FETCH]);
    let d = Daemon::start(data.path(), Some(plugins.path()), None);
    let token = d.token.clone().expect("default tenant token");
    let g = gate();
    let here = format!("http://127.0.0.1:{}", g.port);
    cli(&d, ADMIN, &["tenant", "egress", "set", "default", &here]);
    cli(
        &d,
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
    let wf = data.path().join("checked.toml");
    let definition = |checks: &str| {
        format!(
            "name = \"checked\"\npaused = true\nconnections = [\"lake\"]\n{checks}\n\
             [schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
             [[tasks]]\nname = \"write\"\nplugin = \"objects\"\nparams = {{ objects = \"3\", size = \"100\" }}\n\
             [[tasks]]\nname = \"gate\"\nplugin = \"fetch\"\ndepends_on = [\"write\"]\n\
             allowed_hosts = [\"{here}\"]\nparams = {{ url = \"{here}/gate\" }}\n"
        )
    };
    // A bad value is refused naming the field, and nothing is stored.
    std::fs::write(&wf, definition("[checks]\noutputs = \"sometimes\"")).unwrap();
    let (code, _, err) = d.cli_as(&token, &["apply", "--file", wf.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("checks.outputs: \"sometimes\" is not one of \"off\", \"after_window\""),
        "{err}"
    );
    std::fs::write(&wf, definition("[checks]\noutputs = \"after_window\"")).unwrap();
    cli(&d, &token, &["apply", "--file", wf.to_str().unwrap()]);
    let shown = d.get("/api/v1/workflows/checked");
    assert_eq!(
        shown["definition"]["checks"]["outputs"], "after_window",
        "{shown}"
    );

    // A normal window: the check passes once the run has ended.
    let first = run_window(&d, &token, DAY0);
    g.pass(|| {});
    wait_for("the first window's check", Duration::from_secs(60), || {
        output(&d, first)["check"]["state"] == "passed"
    });
    let o = output(&d, first);
    assert_eq!(o["published"], true, "{o}");
    assert_eq!(o["check"]["manifest"], "current", "{o}");
    assert!(o["check"]["checked_ms"].as_i64().is_some(), "{o}");
    let run = d.get(&format!("/api/v1/runs/{first}"));
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    assert!(
        metrics(&d)
            .contains("tidemark_output_checks_total{tenant=\"default\",result=\"passed\"} 1"),
        "{}",
        metrics(&d)
    );

    // The next window: while the run is held open after `write` published,
    // its objects are changed behind Tidemark's back.
    let second = run_window(&d, &token, DAY0 + H);
    let root = data.path().join("objects/default/lake");
    let dir = "checked/write/window=20240301T010000Z";
    g.pass(|| {
        // Publishing may still be under way when the next task starts.
        wait_for("write's output published", Duration::from_secs(30), || {
            output(&d, second)["published"] == true
        });
        let o = output(&d, second);
        assert_eq!(o["check"]["state"], "pending", "the run is open: {o}");
        let key = |i: usize| root.join(o["objects"][i]["key"].as_str().unwrap());
        std::fs::remove_file(key(0)).unwrap();
        let mut bytes = std::fs::read(key(1)).unwrap();
        bytes[0] ^= 1;
        std::fs::write(key(1), bytes).unwrap();
        std::fs::write(key(2), b"short").unwrap();
        std::fs::write(root.join(dir).join("stray.jsonl"), b"{}\n").unwrap();
    });
    wait_for("the second window's check", Duration::from_secs(60), || {
        output(&d, second)["check"]["state"] != "pending"
    });
    let o = output(&d, second);
    let check = &o["check"];
    assert_eq!(check["state"], "failed", "{o}");
    assert_eq!(check["manifest"], "current", "{o}");
    assert_eq!(check["missing"], serde_json::json!(["part-0000.bin"]));
    assert_eq!(
        check["checksum_mismatch"],
        serde_json::json!(["part-0001.bin"])
    );
    assert_eq!(check["size_mismatch"], serde_json::json!(["part-0002.bin"]));
    assert_eq!(
        check["extra"],
        serde_json::json!([format!("{dir}/stray.jsonl")])
    );
    // The check reports; it does not change the run's outcome.
    let run = d.get(&format!("/api/v1/runs/{second}"));
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    // The workflow's outputs listing shows both results.
    let listed = d.get("/api/v1/workflows/checked/outputs");
    let states: Vec<(i64, String)> = listed["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["window_start_ms"].as_i64().unwrap(),
                o["check"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![(DAY0, "passed".into()), (DAY0 + H, "failed".into())]
    );
    let m = metrics(&d);
    assert!(
        m.contains("tidemark_output_checks_total{tenant=\"default\",result=\"failed\"} 1"),
        "{m}"
    );

    // Without the declaration, outputs carry no check.
    std::fs::write(&wf, definition("")).unwrap();
    cli(&d, &token, &["apply", "--file", wf.to_str().unwrap()]);
    let third = run_window(&d, &token, DAY0 + 2 * H);
    g.pass(|| {});
    wait_for("the third run", Duration::from_secs(60), || {
        d.get(&format!("/api/v1/runs/{third}"))["run"]["state"] == "succeeded"
    });
    let o = output(&d, third);
    assert!(o["check"].is_null(), "{o}");
    assert_eq!(d.terminate(), 0);
}

/// A check still pending when the engine stops (its run waits for a
/// retry) is kept in the store and runs once the resumed run ends after
/// the restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_check_survives_a_restart_and_runs_when_the_run_ends() {
    use std::sync::Arc;
    use tidemark::clock::ManualClock;
    use tidemark::engine::{Engine, EngineConfig};
    use tidemark::executor::Trigger;
    use tidemark::store::{CheckState, OutputStore, SledStore};
    use tidemark_tests::plugins::FLAKY;

    let data = tempfile::tempdir().unwrap();
    let objects = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(data.path()).unwrap());
    let clock = Arc::new(ManualClock::new(DAY0 + 48 * H));
    let open = || async {
        Engine::open(
            store.clone(),
            crate::engine_executor(),
            clock.clone(),
            EngineConfig {
                objects_dir: Some(objects.path().to_path_buf()),
                ..EngineConfig::default()
            },
        )
        .await
        .unwrap()
    };
    let e = open().await;
    tidemark::tenancy::Tenancy::new(store.clone(), "admin-token")
        .create_tenant("acme", DAY0)
        .unwrap();
    for (name, wasm) in [("objects", OBJECTS), ("flaky", FLAKY)] {
        e.push_plugin("acme", name, std::fs::read(wasm).unwrap())
            .await
            .unwrap();
    }
    e.create_connection(
        "acme",
        &tidemark::connection::RawConnection {
            name: "lake".into(),
            kind: "fs".into(),
            config: [("path".to_string(), "lake".to_string())].into(),
            secrets: Default::default(),
        },
    )
    .unwrap();
    // `f` fails once and retries an hour later: the run stays open.
    let def = "name = \"later\"\npaused = true\nconnections = [\"lake\"]\n\
               [checks]\noutputs = \"after_window\"\n\
               [schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
               [[tasks]]\nname = \"write\"\nplugin = \"objects\"\n\
               [[tasks]]\nname = \"f\"\nplugin = \"flaky\"\nparams = { fail_times = 1 }\n\
               retries = 1\nretry_delay = \"1h\"\ndepends_on = [\"write\"]\n";
    e.apply_workflow(
        "acme",
        tidemark::workflow::RawWorkflow::from_toml(def).unwrap(),
    )
    .await
    .unwrap();
    let run = e
        .run_window("acme", "later", DAY0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let output = || {
        store
            .output_get("acme", "lake", "later", "write", DAY0)
            .unwrap()
            .expect("write's output is committed")
    };
    let pending = output();
    assert_eq!(pending.run_id, run.id);
    assert_eq!(
        pending.check.as_ref().map(|c| c.state),
        Some(CheckState::Pending)
    );
    assert!(
        store
            .outputs_pending()
            .unwrap()
            .iter()
            .any(|(_, r)| r.run_id == run.id),
        "still on the publisher's work list"
    );

    // Stop, then start again on the same store: the run resumes, and the
    // check waits for it.
    drop(e);
    let e = open().await;
    e.settle().await.unwrap();
    assert_eq!(
        output().check.map(|c| c.state),
        Some(CheckState::Pending),
        "not before the run ends"
    );
    clock.advance(2 * H);
    e.settle().await.unwrap();
    let ended = e.run("acme", run.id).unwrap().unwrap();
    assert_eq!(ended.state, tidemark::run::RunState::Succeeded);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while output().check_pending() {
        assert!(
            std::time::Instant::now() < deadline,
            "the check did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checked = output().check.unwrap();
    assert_eq!(checked.state, CheckState::Passed, "{checked:?}");
    assert!(!store
        .outputs_pending()
        .unwrap()
        .iter()
        .any(|(_, r)| r.run_id == run.id));
}
