//! Object storage for tasks: window outputs published exactly once, on the
//! embedded `fs` store and on a real S3 server (SeaweedFS), re-runs that
//! replace them, failures that leave nothing visible, and the consistency
//! check that finds what changed behind Tidemark's back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use tidemark::clock::ManualClock;
use tidemark::connection::RawConnection;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::{ErrorKind, Trigger};
use tidemark::store::{ConnectionStore, OutputStore, SledStore};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::{JS_OBJECTS, OBJECTS, PY_OBJECTS};

use crate::daemon::wait_for;

/// 2024-03-01T00:00:00Z, a Friday.
pub(crate) const DAY0: i64 = 1_709_251_200_000;
pub(crate) const H: i64 = 3_600_000;
const KEY_ID: &str = "tidemark-test";
const KEY_SECRET: &str = "seaweed-S3CRET-71c4";

/// One SeaweedFS for the suite (S3 only; each test uses its own bucket).
pub struct Seaweed {
    pub endpoint: String,
    pub port: u16,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts SeaweedFS once per suite run. It is spawned from a thread that
/// never ends, with a parent-death signal, so it dies with the suite.
pub fn seaweed() -> &'static Seaweed {
    static S: OnceLock<Seaweed> = OnceLock::new();
    S.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new("bash")
            .arg(root.join("scripts/seaweedfs.sh"))
            .output()
            .expect("scripts/seaweedfs.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let weed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        // gRPC ports default to the HTTP port + 10000: pick HTTP ports whose
        // +10000 is free too by asking for every port explicitly.
        let ports: Vec<u16> = (0..12).map(|_| free_port()).collect();
        // Data of earlier suite runs whose process is gone (the server dies
        // with the suite, its directory stays).
        for e in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("tidemark-weed-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("tidemark-weed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s3 = ports[6];
        let args: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", dir.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            format!("-master.port={}", ports[0]),
            format!("-master.port.grpc={}", ports[1]),
            format!("-volume.port={}", ports[2]),
            format!("-volume.port.grpc={}", ports[3]),
            format!("-filer.port={}", ports[4]),
            format!("-filer.port.grpc={}", ports[5]),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={}", ports[7]),
            format!("-admin.port={}", ports[8]),
            format!("-admin.port.grpc={}", ports[9]),
            format!("-metricsPort={}", ports[10]),
            "-bucket=lake,bench,chaos,other".into(),
        ];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(weed);
            cmd.args(&args)
                .env("AWS_ACCESS_KEY_ID", KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", KEY_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs here.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            // Never waited on: it runs until the suite exits (see above).
            #[allow(clippy::zombie_processes)]
            let child: Child = cmd.spawn().expect("starting weed mini");
            tx.send(child.id()).unwrap();
            // This thread must outlive the suite: the death signal fires
            // when the thread that spawned the process ends.
            loop {
                std::thread::park();
            }
        });
        rx.recv().unwrap();
        let endpoint = format!("http://127.0.0.1:{s3}");
        wait_for("SeaweedFS's S3 gateway", Duration::from_secs(60), || {
            // Unauthenticated: 403 once the gateway and its bucket are up.
            matches!(
                ureq::get(&format!("{endpoint}/lake")).call(),
                Err(ureq::Error::Status(403, _))
            )
        });
        Seaweed { endpoint, port: s3 }
    })
}

fn s3_connection(name: &str, bucket: &str, secret: &str) -> RawConnection {
    let s = seaweed();
    RawConnection {
        name: name.into(),
        kind: "s3".into(),
        config: [
            ("bucket", bucket),
            ("access_key_id", KEY_ID),
            ("endpoint", s.endpoint.as_str()),
            ("prefix", "tm"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        secrets: [("secret_access_key".to_string(), secret.to_string())].into(),
    }
}

fn fs_connection(name: &str) -> RawConnection {
    RawConnection {
        name: name.into(),
        kind: "fs".into(),
        config: [("path".to_string(), "lake".to_string())].into(),
        secrets: Default::default(),
    }
}

pub(crate) fn workflow(name: &str, params: &str, extra: &str) -> RawWorkflow {
    workflow_of("objects", name, params, extra)
}

/// `workflow` with its task run by `plugin`.
fn workflow_of(plugin: &str, name: &str, params: &str, extra: &str) -> RawWorkflow {
    RawWorkflow::from_toml(&format!(
        "name = {name:?}\npaused = true\nconnections = [\"lake\"]\n{extra}\n\
         [schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"write\"\nplugin = {plugin:?}\nparams = {{ {params} }}\nretries = 0\n"
    ))
    .unwrap()
}

pub(crate) struct Fixture {
    pub engine: Engine,
    pub store: Arc<SledStore>,
    pub objects: tempfile::TempDir,
    _data: tempfile::TempDir,
}

pub(crate) async fn fixture() -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let objects = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(data.path()).unwrap());
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        Arc::new(ManualClock::new(DAY0 + 48 * H)),
        EngineConfig {
            objects_dir: Some(objects.path().to_path_buf()),
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    let tenancy = tidemark::tenancy::Tenancy::new(store.clone(), "admin-token");
    tenancy.create_tenant("acme", DAY0).unwrap();
    tenancy.create_tenant("beta", DAY0).unwrap();
    engine
        .push_plugin("acme", "objects", std::fs::read(OBJECTS).unwrap())
        .await
        .unwrap();
    Fixture {
        engine,
        store,
        objects,
        _data: data,
    }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn manifest(root: &Path, dir: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root.join(dir).join("_manifest.json")).unwrap()).unwrap()
}

pub(crate) async fn backfill(e: &Engine, wf: &str, from: i64, to: i64, rerun: &str) -> u64 {
    let req = serde_json::from_value(json!({
        "workflow": wf,
        "start": crate::backfill::iso(from),
        "end": crate::backfill::iso(to),
        "rerun": rerun,
        "parallelism": 4,
    }))
    .unwrap();
    let b = e.create_backfill("acme", req).await.unwrap().unwrap();
    e.settle().await.unwrap();
    let done = e.backfill("acme", b.id).unwrap().unwrap();
    assert!(done.state.is_terminal(), "{done:?}");
    b.id
}

#[tokio::test(flavor = "multi_thread")]
async fn window_outputs_publish_once_rerun_replaces_and_failures_leave_nothing() {
    let f = fixture().await;
    let e = &f.engine;
    e.create_connection("acme", &fs_connection("lake")).unwrap();
    e.apply_workflow(
        "acme",
        workflow("daily", "objects = \"3\", size = \"100\"", ""),
    )
    .await
    .unwrap();
    let first = backfill(e, "daily", DAY0, DAY0 + 2 * H, "missing").await;
    let runs = e
        .store()
        .windows("acme", "daily", DAY0, DAY0 + 2 * H, 10)
        .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for (_, w) in &runs {
        let a = e.attempts("acme", w.run_id).unwrap();
        assert_eq!(a[0].error_kind, None, "{a:?}");
    }
    let root = f.objects.path().join("acme/lake");
    let dir0 = "daily/write/window=20240301T000000Z";
    let m = manifest(&root, dir0);
    assert_eq!(m["window_start_ms"], DAY0);
    let objects = m["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 3);
    // Exactly the manifest and the objects it names are there.
    let mut expected: Vec<String> = objects
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect();
    expected.push(format!("{dir0}/_manifest.json"));
    expected.extend(
        files(&root)
            .into_iter()
            .filter(|p| p.starts_with("daily/write/window=20240301T010000Z")),
    );
    expected.sort();
    assert_eq!(files(&root), expected);
    let part0 = root.join(objects[0]["key"].as_str().unwrap());
    assert_eq!(std::fs::read(&part0).unwrap().len(), 100);
    assert!(std::fs::read(&part0)
        .unwrap()
        .starts_with(format!("{DAY0}:0;").as_bytes()));

    // A re-run replaces the window's output as a whole, and the replaced
    // objects are gone.
    let before = files(&root);
    backfill(e, "daily", DAY0, DAY0 + H, "all").await;
    let m2 = manifest(&root, dir0);
    assert_ne!(m2["run_id"], m["run_id"]);
    assert!(!part0.exists(), "the superseded output is deleted");
    assert_eq!(files(&root).len(), before.len(), "{:?}", files(&root));
    let v = e.verify_backfill("acme", first).await.unwrap();
    assert_eq!(v.windows, 2);
    assert_eq!(v.checks.len(), 2);
    assert!(v.checks.iter().all(|c| c.consistent()), "{:?}", v.checks);

    // A failing attempt writes, then fails: nothing of it stays, and the
    // window keeps its previous output.
    e.apply_workflow(
        "acme",
        workflow(
            "daily",
            "objects = \"3\", size = \"100\", fail = \"always\"",
            "",
        ),
    )
    .await
    .unwrap();
    let snapshot = files(&root);
    backfill(e, "daily", DAY0, DAY0 + H, "all").await;
    assert_eq!(files(&root), snapshot);
    assert_eq!(manifest(&root, dir0), m2);
    assert!(f.store.staging_all().unwrap().is_empty());

    // The check finds what changed behind Tidemark's back.
    let m2_objects = m2["objects"].as_array().unwrap();
    let key = |i: usize| root.join(m2_objects[i]["key"].as_str().unwrap());
    std::fs::remove_file(key(0)).unwrap();
    std::fs::write(key(1), b"tampered").unwrap();
    let mut data = std::fs::read(key(2)).unwrap();
    data[0] ^= 1;
    std::fs::write(key(2), data).unwrap();
    std::fs::write(root.join(dir0).join("stray.bin"), b"x").unwrap();
    let v = e.verify_backfill("acme", first).await.unwrap();
    let bad: Vec<_> = v.checks.iter().filter(|c| !c.consistent()).collect();
    assert_eq!(bad.len(), 1, "{:?}", v.checks);
    assert_eq!(bad[0].window_start, DAY0);
    assert_eq!(bad[0].missing, vec!["part-0000.bin"]);
    assert_eq!(bad[0].size_mismatch, vec!["part-0001.bin"]);
    assert_eq!(bad[0].checksum_mismatch, vec!["part-0002.bin"]);
    assert_eq!(bad[0].extra, vec![format!("{dir0}/stray.bin")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_are_the_workflows_connections_of_its_own_tenant_only() {
    let f = fixture().await;
    let e = &f.engine;
    e.create_connection("acme", &fs_connection("lake")).unwrap();
    e.create_connection(
        "acme",
        &RawConnection {
            name: "api".into(),
            kind: "http".into(),
            config: [(
                "base_url".to_string(),
                "https://api.example.com".to_string(),
            )]
            .into(),
            secrets: Default::default(),
        },
    )
    .unwrap();
    // Another tenant's connection of the same name is not acme's.
    e.push_plugin("beta", "objects", std::fs::read(OBJECTS).unwrap())
        .await
        .unwrap();
    e.create_connection("beta", &fs_connection("lake")).unwrap();
    e.apply_workflow("beta", workflow("b", "", ""))
        .await
        .unwrap();
    let cases = [
        (
            "container = \"nope\"",
            "is not a connection this workflow names",
        ),
        (
            "container = \"api\"",
            "is not a connection this workflow names",
        ),
    ];
    for (params, message) in cases {
        e.apply_workflow("acme", workflow("w", params, ""))
            .await
            .unwrap();
        let run = e
            .run_window("acme", "w", DAY0, Trigger::Manual)
            .await
            .unwrap();
        e.settle().await.unwrap();
        let a = e.attempts("acme", run.id).unwrap();
        assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{a:?}");
        assert!(a[0].message.contains(message), "{}", a[0].message);
    }
    // Named but of kind http: refused with the reason.
    let mut w = workflow("w", "container = \"api\"", "");
    w.connections = vec!["lake".into(), "api".into()];
    e.apply_workflow("acme", w).await.unwrap();
    let run = e
        .run_window("acme", "w", DAY0 + H, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let a = e.attempts("acme", run.id).unwrap();
    assert!(
        a[0].message
            .contains("object storage needs kind s3, gcs, azure or fs"),
        "{}",
        a[0].message
    );
    // Names that leave the container are refused before any I/O.
    assert!(tidemark::blob::check_object_name("../beta/lake/x").is_err());
    // Beta's run wrote only below beta's directory.
    let run = e
        .run_window("beta", "b", DAY0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    assert_eq!(e.attempts("beta", run.id).unwrap()[0].error_kind, None);
    assert!(files(&f.objects.path().join("acme")).is_empty());
    assert!(!files(&f.objects.path().join("beta/lake")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_outputs_on_seaweedfs_are_signed_published_and_verified() {
    let s = seaweed();
    let f = fixture().await;
    let e = &f.engine;
    // The endpoint is loopback: the tenant's allowlist must name it.
    e.create_connection("acme", &s3_connection("lake", "lake", KEY_SECRET))
        .unwrap();
    e.apply_workflow(
        "acme",
        workflow("up", "objects = \"2\", size = \"1000\"", ""),
    )
    .await
    .unwrap();
    let run = e
        .run_window("acme", "up", DAY0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let a = e.attempts("acme", run.id).unwrap();
    assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{a:?}");
    assert!(
        a[0].message.contains("egress allowlist"),
        "{}",
        a[0].message
    );

    let allow =
        tidemark::egress::Allowlist::parse(&[format!("http://127.0.0.1:{}", s.port)]).unwrap();
    e.set_egress("acme", &allow).unwrap();
    let id = backfill(e, "up", DAY0, DAY0 + 3 * H, "missing").await;
    // Downstream reads upstream's committed output through the SDK.
    e.apply_workflow(
        "acme",
        workflow("down", "objects = \"1\", upstream = \"up/write\"", ""),
    )
    .await
    .unwrap();
    let run = e
        .run_window("acme", "down", DAY0 + H, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let a = e.attempts("acme", run.id).unwrap();
    assert_eq!(a[0].error_kind, None, "{a:?}");
    assert!(
        a[0].message.ends_with("read 2000 bytes"),
        "{}",
        a[0].message
    );

    let record = f.store.connection_get("acme", "lake").unwrap().unwrap();
    let c = tidemark::blob::open_container("acme", &record, Some(KEY_SECRET), None).unwrap();
    let m: Value = serde_json::from_slice(
        &c.get("up/write/window=20240301T010000Z/_manifest.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m["objects"].as_array().unwrap().len(), 2);
    let v = e.verify_backfill("acme", id).await.unwrap();
    assert_eq!(v.checks.len(), 3);
    assert!(v.checks.iter().all(|c| c.consistent()), "{:?}", v.checks);
    // Deleted behind Tidemark's back: found.
    let gone = m["objects"][1]["key"].as_str().unwrap();
    c.delete(gone).await.unwrap();
    let v = e.verify_backfill("acme", id).await.unwrap();
    let bad: Vec<_> = v.checks.iter().filter(|c| !c.consistent()).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].missing, vec!["part-0001.bin"]);

    // Credentials the store refuses: a clear attempt error naming the
    // container, never the secret.
    e.create_connection("acme", &s3_connection("wrong", "lake", "not-the-secret"))
        .unwrap();
    e.apply_workflow(
        "acme",
        RawWorkflow::from_toml(
            "name = \"bad\"\npaused = true\nconnections = [\"wrong\"]\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
             [[tasks]]\nname = \"write\"\nplugin = \"objects\"\nparams = { container = \"wrong\" }\nretries = 0\n",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let run = e
        .run_window("acme", "bad", DAY0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let a = e.attempts("acme", run.id).unwrap();
    assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{a:?}");
    assert!(
        a[0].message.contains("wrong: the storage refused"),
        "{}",
        a[0].message
    );
    assert!(!a[0].message.contains("not-the-secret"));
}

/// The bytes `plugins/objects` writes for object `i` of a window.
fn expected_object(window_start: i64, i: u32, size: usize) -> Vec<u8> {
    format!("{window_start}:{i};")
        .bytes()
        .cycle()
        .take(size)
        .collect()
}

#[test]
fn sigkill_during_a_backfill_writing_objects_publishes_each_window_exactly_once() {
    use crate::daemon::{plugin_dir, Daemon, ADMIN};
    let s = seaweed();
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[OBJECTS]);
    let first = Daemon::start(data.path(), Some(plugins.path()), None);
    let token = first.token.clone().expect("default tenant token");
    let cli = |d: &Daemon, t: &str, args: &[&str]| {
        let (code, out, err) = d.cli_as(t, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    let allow = format!("http://127.0.0.1:{}", s.port);
    cli(
        &first,
        ADMIN,
        &["tenant", "egress", "set", "default", &allow],
    );
    let prefix = format!("chaos-{}", std::process::id());
    cli(
        &first,
        &token,
        &[
            "connection",
            "create",
            "lake",
            "--kind",
            "s3",
            "--config",
            "bucket=chaos",
            "--config",
            &format!("access_key_id={KEY_ID}"),
            "--config",
            &format!("endpoint={}", s.endpoint),
            "--config",
            &format!("prefix={prefix}"),
            "--secret",
            &format!("secret_access_key={KEY_SECRET}"),
        ],
    );
    let now = chrono::Utc::now().timestamp_millis();
    let start = (now / H) * H - 300 * H;
    let wf = data.path().join("chaos.toml");
    std::fs::write(
        &wf,
        format!(
            "name = \"chaos\"\npaused = true\nconnections = [\"lake\"]\n\
             [schedule]\ncron = \"0 * * * *\"\nstart = \"{}\"\n\
             [[tasks]]\nname = \"write\"\nplugin = \"objects\"\nparams = {{ objects = \"3\", size = \"20000\" }}\n",
            crate::backfill::iso(start)
        ),
    )
    .unwrap();
    cli(&first, &token, &["apply", "--file", wf.to_str().unwrap()]);
    let out = cli(
        &first,
        &token,
        &[
            "backfill",
            "create",
            "chaos",
            "--start",
            &crate::backfill::iso(start),
            "--end",
            &crate::backfill::iso(start + 200 * H),
            "--parallelism",
            "8",
            "--output",
            "json",
        ],
    );
    let id = serde_json::from_str::<Value>(&out).unwrap()["backfill"]["id"]
        .as_u64()
        .expect("backfill id");
    let status = |d: &Daemon| d.get(&format!("/api/v1/backfills/{id}"));
    let succeeded = |d: &Daemon| status(d)["backfill"]["succeeded"].as_u64().unwrap_or(0);

    // Kill at spread-out points of the backfill's progress, with attempts,
    // publishes and collection in flight, restarting each time.
    let mut d = first;
    for at in [20u64, 70, 120, 170] {
        wait_for("backfill progress", Duration::from_secs(120), || {
            succeeded(&d) >= at
        });
        d.kill9();
        d = Daemon::start(data.path(), Some(plugins.path()), None);
    }
    wait_for("the backfill to end", Duration::from_secs(180), || {
        status(&d)["backfill"]["state"] != "running"
    });
    assert_eq!(
        status(&d)["backfill"]["state"],
        "succeeded",
        "{}",
        status(&d)
    );
    assert_eq!(succeeded(&d), 200);
    // Publishing and collection finish in the background after a restart.
    let mut last = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (code, out, err) = d.cli_as(
            &token,
            &["backfill", "verify", &id.to_string(), "--output", "json"],
        );
        if code == 0 && serde_json::from_str::<Value>(&out).is_ok_and(|v| v["consistent"] == 200) {
            break;
        }
        last = format!("{out}{err}");
        assert!(
            std::time::Instant::now() < deadline,
            "outputs not consistent: {}",
            &last[..last.len().min(3000)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(last);

    // Each window's published output equals the uninterrupted run's, and
    // nothing else is in the bucket: no partial, duplicate or staged object.
    let record = tidemark::store::ConnectionRecord {
        name: "lake".into(),
        kind: tidemark::connection::ConnectionKind::S3,
        config: [
            ("bucket", "chaos"),
            ("access_key_id", KEY_ID),
            ("endpoint", s.endpoint.as_str()),
            ("prefix", prefix.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        secrets: Default::default(),
        revision: 1,
        created_ms: 0,
        updated_ms: 0,
    };
    let c = tidemark::blob::open_container("default", &record, Some(KEY_SECRET), None).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut named = Vec::new();
    for w in 0..200 {
        let ws = start + w * H;
        let dir = tidemark::blob::window_dir("chaos", "write", ws);
        let m: Value = serde_json::from_slice(
            &rt.block_on(c.get(&format!("{dir}/_manifest.json")))
                .unwrap(),
        )
        .unwrap();
        let objects = m["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 3, "window {ws}: {m}");
        for (i, o) in objects.iter().enumerate() {
            assert_eq!(o["name"], format!("part-{i:04}.bin"));
            let key = o["key"].as_str().unwrap();
            let bytes = rt.block_on(c.get(key)).unwrap();
            assert!(
                bytes == expected_object(ws, i as u32, 20_000),
                "window {ws} object {i}"
            );
            named.push(key.to_owned());
        }
        named.push(format!("{dir}/_manifest.json"));
    }
    named.sort();
    // Objects of killed attempts are collected in the background (with a
    // grace period for writes that land after their process died).
    let mut listed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while std::time::Instant::now() < deadline {
        listed = rt
            .block_on(c.list(""))
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect::<Vec<String>>();
        if listed == named {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let leftovers: Vec<&String> = listed.iter().filter(|k| !named.contains(k)).collect();
    assert!(
        leftovers.is_empty(),
        "staged leftovers after collection: {leftovers:?}"
    );
    assert_eq!(
        listed, named,
        "only manifests and the objects they name are stored"
    );
    assert_eq!(d.terminate(), 0);
}

/// What the Python and JavaScript `objects` guests write for the window
/// starting at `start` after reading `read` upstream bytes, by name.
fn guest_objects(start: i64, read: usize) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "part-0.txt".into(),
            format!("window {start}\n").into_bytes(),
        ),
        (
            "part-1.json".into(),
            format!(
                "{{\"window_start\":{start},\"window_end\":{},\"read\":{read}}}",
                start + H
            )
            .into_bytes(),
        ),
    ]
}

/// The published objects of one window as its manifest names them, after
/// checking that exactly the manifest and those objects are on disk below
/// the window's directory.
fn published(root: &Path, dir: &str, start: i64) -> Vec<(String, Vec<u8>)> {
    let m = manifest(root, dir);
    assert_eq!(m["window_start_ms"], start, "{m}");
    let objects = m["objects"].as_array().unwrap();
    let mut expected: Vec<String> = objects
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect();
    expected.push(format!("{dir}/_manifest.json"));
    expected.sort();
    let on_disk: Vec<String> = files(root)
        .into_iter()
        .filter(|p| p.starts_with(&format!("{dir}/")))
        .collect();
    assert_eq!(
        on_disk, expected,
        "nothing but the manifest and its objects"
    );
    objects
        .iter()
        .map(|o| {
            let data = std::fs::read(root.join(o["key"].as_str().unwrap())).unwrap();
            assert_eq!(o["size"], data.len() as u64, "{o}");
            (o["name"].as_str().unwrap().to_owned(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_guests_publish_and_read_window_outputs() {
    let f = fixture().await;
    let e = &f.engine;
    e.create_connection("acme", &fs_connection("lake")).unwrap();
    let root = f.objects.path().join("acme/lake");
    for (lang, wasm) in [("python", PY_OBJECTS), ("javascript", JS_OBJECTS)] {
        let plugin = format!("objects-{lang}");
        e.push_plugin("acme", &plugin, std::fs::read(wasm).unwrap())
            .await
            .unwrap();
        // Upstream: two windows, each publishing its two objects (the
        // scratch object written and discarded is not among them).
        let up = format!("up-{lang}");
        e.apply_workflow("acme", workflow_of(&plugin, &up, "", ""))
            .await
            .unwrap();
        backfill(e, &up, DAY0, DAY0 + 2 * H, "missing").await;
        let runs = e
            .store()
            .windows("acme", &up, DAY0, DAY0 + 2 * H, 10)
            .unwrap();
        assert_eq!(runs.len(), 2, "{lang}: {runs:?}");
        for (_, w) in &runs {
            let a = e.attempts("acme", w.run_id).unwrap();
            assert_eq!(a[0].error_kind, None, "{lang}: {a:?}");
            assert_eq!(a[0].message, "2 objects, read 0 bytes, 0 manifests");
        }
        for (start, stamp) in [(DAY0, "20240301T000000Z"), (DAY0 + H, "20240301T010000Z")] {
            let dir = format!("{up}/write/window={stamp}");
            assert_eq!(
                published(&root, &dir, start),
                guest_objects(start, 0),
                "{lang}: {dir}"
            );
        }

        // Downstream reads upstream's committed output of its window
        // (checked with info and read_range, its manifests listed).
        let down = format!("down-{lang}");
        e.apply_workflow(
            "acme",
            workflow_of(&plugin, &down, &format!("upstream = \"{up}/write\""), ""),
        )
        .await
        .unwrap();
        let run = e
            .run_window("acme", &down, DAY0 + H, Trigger::Manual)
            .await
            .unwrap();
        e.settle().await.unwrap();
        let a = e.attempts("acme", run.id).unwrap();
        assert_eq!(a[0].error_kind, None, "{lang}: {a:?}");
        let read: usize = guest_objects(DAY0 + H, 0)
            .iter()
            .map(|(_, b)| b.len())
            .sum();
        assert_eq!(
            a[0].message,
            format!("2 objects, read {read} bytes, 2 manifests"),
            "{lang}"
        );
        let dir = format!("{down}/write/window=20240301T010000Z");
        assert_eq!(
            published(&root, &dir, DAY0 + H),
            guest_objects(DAY0 + H, read),
            "{lang}"
        );

        // A window upstream has not published: the SDK's retryable error,
        // and nothing published.
        let run = e
            .run_window("acme", &down, DAY0 + 5 * H, Trigger::Manual)
            .await
            .unwrap();
        e.settle().await.unwrap();
        let a = e.attempts("acme", run.id).unwrap();
        assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{lang}: {a:?}");
        assert!(
            a[0].message.contains("has no output for this window yet"),
            "{lang}: {}",
            a[0].message
        );
        assert!(!root
            .join(format!("{down}/write/window=20240301T050000Z"))
            .exists());

        // A container the workflow does not name: the host's blob-error,
        // a fatal task error through the SDK.
        let bad = format!("bad-{lang}");
        e.apply_workflow(
            "acme",
            workflow_of(&plugin, &bad, "container = \"nope\"", ""),
        )
        .await
        .unwrap();
        let run = e
            .run_window("acme", &bad, DAY0, Trigger::Manual)
            .await
            .unwrap();
        e.settle().await.unwrap();
        let a = e.attempts("acme", run.id).unwrap();
        assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{lang}: {a:?}");
        assert!(
            a[0].message
                .contains("is not a connection this workflow names"),
            "{lang}: {}",
            a[0].message
        );
    }
    assert!(f.store.staging_all().unwrap().is_empty());
}

/// Each "Write a task in ..." page shows its language's objects plugin,
/// built and tested here, verbatim.
#[test]
fn task_docs_show_the_tested_objects_plugins() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (page, fence, plugin) in [
        (
            "docs/tasks/rust.md",
            "```rust\n",
            "plugins/objects/src/lib.rs",
        ),
        (
            "docs/tasks/python.md",
            "```python\n",
            "plugins/python/objects.py",
        ),
        (
            "docs/tasks/javascript.md",
            "```js\n",
            "plugins/js/objects.js",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        let source = std::fs::read_to_string(root.join(plugin)).unwrap();
        assert!(
            text.contains(&format!("{fence}{source}```\n")),
            "{page} is stale: copy {plugin} into its object-storage section"
        );
    }
}
