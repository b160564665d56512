//! Outbound HTTP and object storage from tasks against native clients.
//!
//! 1. One allowed GET from a Rust task (`plugins/fetch`, one attempt per
//!    request: instantiate, request over a fresh connection, drop) to a
//!    local server, against the same request from a native client over a
//!    fresh TCP connection: p50 and p99 over REQUESTS (1,000).
//! 2. WINDOWS (1,000) windows of 1 MiB each written and published to a real
//!    SeaweedFS by a backfill of `plugins/objects` through the engine,
//!    against the same bytes put by a native `object_store` client with the
//!    same concurrency: MiB/s.
//!
//! `cargo bench -p tidemark-tests --bench egress_objects`

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::clock::ManualClock;
use tidemark::egress::{Allowlist, Egress};
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::{Executor, ExecutorConfig, Invocation, Limits, Trigger};
use tidemark::store::SledStore;
use tidemark_tests::plugins;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY_ID: &str = "bench";
const KEY_SECRET: &str = "bench-secret-key";
const H: i64 = 3_600_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 server answering every request with `hello`.
async fn serve() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// The same GET from a native hyper client (what the host itself uses),
/// over a fresh connection like the task's.
async fn native_get(port: u16) -> Duration {
    use http_body_util::BodyExt;
    let t = Instant::now();
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.set_nodelay(true).unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(s))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://127.0.0.1:{port}/ok"))
        .header("host", "127.0.0.1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
    drop(sender);
    let _ = conn.await;
    t.elapsed()
}

fn http_bench(rt: &tokio::runtime::Runtime, requests: usize) {
    println!("== outbound HTTP: task vs native, {requests} requests");
    let executor = Executor::new(ExecutorConfig::default()).expect("executor");
    let fetch = executor
        .load(&std::fs::read(plugins::FETCH).unwrap())
        .expect("fetch");
    let store = Arc::new(SledStore::temporary().unwrap());
    rt.block_on(async {
        let port = serve().await;
        let url = format!("http://127.0.0.1:{port}/ok");
        let allow = Allowlist::parse(&[format!("http://127.0.0.1:{port}")]).unwrap();
        let limits = Limits {
            egress: Egress {
                tenant: allow.clone(),
                task: allow,
                ..Egress::default()
            },
            ..Limits::default()
        };
        let inv = Invocation {
            tenant: "bench".into(),
            workflow: "wf".into(),
            task: "get".into(),
            run_id: "1".into(),
            window_start_ms: 0,
            window_end_ms: H,
            timezone: "UTC".into(),
            attempt: 1,
            trigger: Trigger::Manual,
            params: vec![("url".into(), url)],
            payload: Vec::new(),
        };
        // Warm both paths.
        for _ in 0..50 {
            executor.run(&fetch, &inv, &limits, store.clone()).await;
            native_get(port).await;
        }
        let mut task = Vec::with_capacity(requests);
        let mut native = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let r = executor.run(&fetch, &inv, &limits, store.clone()).await;
            task.push(t.elapsed());
            assert!(r.result.is_ok(), "{:?}", r.result);
            native.push(native_get(port).await);
        }
        task.sort();
        native.sort();
        println!(
            "task (whole attempt, fresh connection): p50 {:.0} us, p99 {:.0} us",
            pct(&task, 0.5),
            pct(&task, 0.99)
        );
        println!(
            "native hyper (fresh connection):        p50 {:.0} us, p99 {:.0} us",
            pct(&native, 0.5),
            pct(&native, 0.99)
        );
        println!("ratio at p50: {:.2}x", pct(&task, 0.5) / pct(&native, 0.5));
    });
}

struct Weed(std::process::Child);

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_weed(dir: &std::path::Path) -> (Weed, u16) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/seaweedfs.sh"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let weed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let p: Vec<u16> = (0..11).map(|_| free_port()).collect();
    let child = Command::new(weed)
        .args([
            "mini".to_string(),
            format!("-dir={}", dir.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            format!("-s3.port={}", p[6]),
            format!("-s3.port.grpc={}", p[7]),
            format!("-admin.port={}", p[8]),
            format!("-admin.port.grpc={}", p[9]),
            format!("-metricsPort={}", p[10]),
            "-bucket=bench".into(),
        ])
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", KEY_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weed mini");
    let weed = Weed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Err(ureq::Error::Status(403, _)) =
            ureq::get(&format!("http://127.0.0.1:{}/bench", p[6])).call()
        {
            break;
        }
        assert!(Instant::now() < deadline, "SeaweedFS did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    (weed, p[6])
}

fn objects_bench(rt: &tokio::runtime::Runtime, windows: usize) {
    const MIB: usize = 1 << 20;
    println!("== object storage: {windows} windows x 1 MiB to SeaweedFS, task vs native");
    let weed_dir = tempfile::tempdir().unwrap();
    let (_weed, port) = start_weed(weed_dir.path());
    let endpoint = format!("http://127.0.0.1:{port}");
    let parallel = 8;
    rt.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(data.path()).unwrap());
        let t0 = 1_704_067_200_000i64; // 2024-01-01
        let engine = Engine::open(
            store.clone(),
            Arc::new(Executor::new(ExecutorConfig::default()).unwrap()),
            Arc::new(ManualClock::new(t0 + (windows as i64 + 2) * H)),
            EngineConfig {
                max_concurrent_attempts: parallel,
                ..EngineConfig::default()
            },
        )
        .await
        .unwrap();
        tidemark::tenancy::Tenancy::new(store.clone(), "bench-admin-token")
            .create_tenant("bench", t0)
            .unwrap();
        engine
            .set_egress("bench", &Allowlist::parse(std::slice::from_ref(&endpoint)).unwrap())
            .unwrap();
        let conn: tidemark::connection::RawConnection = serde_json::from_value(serde_json::json!({
            "name": "lake", "kind": "s3",
            "config": {"bucket": "bench", "access_key_id": KEY_ID, "endpoint": endpoint, "prefix": "task"},
            "secrets": {"secret_access_key": KEY_SECRET},
        }))
        .unwrap();
        engine.create_connection("bench", &conn).unwrap();
        engine
            .push_plugin("bench", "objects", std::fs::read(plugins::OBJECTS).unwrap())
            .await
            .unwrap();
        engine
            .apply_workflow(
                "bench",
                tidemark::workflow::RawWorkflow::from_toml(&format!(
                    "name = \"bulk\"\npaused = true\nconnections = [\"lake\"]\n\
                     [schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
                     [[tasks]]\nname = \"write\"\nplugin = \"objects\"\nmemory = \"64MiB\"\n\
                     params = {{ objects = \"1\", size = \"{MIB}\" }}\n"
                ))
                .unwrap(),
            )
            .await
            .unwrap();
        let iso = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339()
        };
        let req = serde_json::from_value(serde_json::json!({
            "workflow": "bulk", "start": iso(t0), "end": iso(t0 + windows as i64 * H),
            "parallelism": parallel,
        }))
        .unwrap();
        let t = Instant::now();
        let b = engine.create_backfill("bench", req).await.unwrap().unwrap();
        engine.settle().await.unwrap();
        let task_secs = t.elapsed().as_secs_f64();
        let done = engine.backfill("bench", b.id).unwrap().unwrap();
        assert_eq!(done.succeeded as usize, windows, "{done:?}");
        let outputs = engine.outputs("bench", "bulk", i64::MIN, i64::MAX).unwrap();
        assert_eq!(outputs.len(), windows);
        assert!(outputs.iter().all(|o| o.published));

        // Native: the same bytes, the same concurrency, one client.
        let record = store_record(&endpoint);
        let c = tidemark::blob::open_container("bench", &record, Some(KEY_SECRET), None).unwrap();
        let t = Instant::now();
        let mut next = 0usize;
        while next < windows {
            let batch: Vec<_> = (next..(next + parallel).min(windows))
                .map(|i| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let body: Vec<u8> = format!("{i}:0;").bytes().cycle().take(MIB).collect();
                        c.put(&format!("native/{i:06}/part-0000.bin"), body).await.unwrap();
                    })
                })
                .collect();
            for h in batch {
                h.await.unwrap();
            }
            next += parallel;
        }
        let native_secs = t.elapsed().as_secs_f64();
        let mib = windows as f64;
        println!(
            "tasks (write, commit, publish manifest): {:.1} MiB/s ({task_secs:.2} s)",
            mib / task_secs
        );
        println!(
            "native puts:                             {:.1} MiB/s ({native_secs:.2} s)",
            mib / native_secs
        );
        println!("task throughput: {:.0}% of native", 100.0 * native_secs / task_secs);
    });
}

fn store_record(endpoint: &str) -> tidemark::store::ConnectionRecord {
    tidemark::store::ConnectionRecord {
        name: "lake".into(),
        kind: tidemark::connection::ConnectionKind::S3,
        config: [
            ("bucket", "bench"),
            ("access_key_id", KEY_ID),
            ("endpoint", endpoint),
            ("prefix", "native"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        secrets: Default::default(),
        revision: 1,
        created_ms: 0,
        updated_ms: 0,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    http_bench(&rt, env("REQUESTS", 1000));
    objects_bench(&rt, env("WINDOWS", 1000));
}
