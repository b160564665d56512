//! Load test of the HTTP trigger on loopback: the real router served by
//! axum on 127.0.0.1, the engine running the event runs (one `hello` task
//! each), and CONCURRENCY client threads sending REQUESTS triggers in all,
//! each with its own Idempotency-Key. Reports requests/s and latency
//! percentiles.
//!
//! `cargo bench -p tidemark-tests --bench trigger_load`
//! (env: REQUESTS, default 20000; CONCURRENCY, default 16)

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::clock::SystemClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::tenancy::Tenancy;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins;

mod common;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let requests = env("REQUESTS", 20_000);
    let concurrency = env("CONCURRENCY", 16);
    let runtime = common::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, token, engine) = runtime.block_on(async {
        let store = Arc::new(tidemark::store::SledStore::open(dir.path()).expect("store"));
        let mut config = EngineConfig {
            max_concurrent_attempts: 8,
            ..EngineConfig::default()
        };
        // The bench measures the endpoint, not the rate limit.
        config.quotas.triggers_per_minute = u32::MAX;
        let engine = Engine::open(store.clone(), common::executor(64), Arc::new(SystemClock), config)
            .await
            .expect("engine");
        let tenancy = Tenancy::new(store, "bench-admin");
        let token = tenancy.create_tenant("bench", 0).expect("tenant").2;
        engine
            .push_plugin("bench", "hello", std::fs::read(plugins::HELLO).expect("plugin"))
            .await
            .expect("push");
        let wf = "name = \"hook\"\npaused = true\nmax_active_runs = 1000\n[schedule]\ncron = \"@daily\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n";
        engine
            .apply_workflow("bench", RawWorkflow::from_toml(wf).expect("toml"))
            .await
            .expect("apply");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = tidemark::api::app(engine.clone(), tenancy);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let driver = engine.clone();
        tokio::spawn(async move {
            driver
                .run_until(std::future::pending::<()>(), Duration::from_secs(1))
                .await
        });
        (url, token, engine)
    });

    let started = Instant::now();
    let per_thread = requests / concurrency;
    let handles: Vec<_> = (0..concurrency)
        .map(|t| {
            let client = tidemark::client::Client::new(&url).with_token(Some(token.clone()));
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per_thread);
                for i in 0..per_thread {
                    let key = format!("t{t}-r{i}");
                    let body = format!("{{\"thread\": {t}, \"request\": {i}}}");
                    let t0 = Instant::now();
                    client
                        .post_raw(
                            "/api/v1/workflows/hook/trigger",
                            body.as_bytes(),
                            &[("Idempotency-Key", &key)],
                        )
                        .expect("trigger");
                    lat.push(t0.elapsed().as_micros() as i64);
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let wall = started.elapsed();
    lat.sort_unstable();
    println!(
        "{} triggers, {concurrency} concurrent clients: {:.0} requests/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        lat.len() as f64 / wall.as_secs_f64(),
        common::percentile(&lat, 0.5) as f64 / 1000.0,
        common::percentile(&lat, 0.99) as f64 / 1000.0,
        *lat.last().unwrap_or(&0) as f64 / 1000.0,
    );
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        while engine.active_runs() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "event runs still active {} s after the last request: {}",
            started.elapsed().saturating_sub(wall).as_secs(),
            engine.active_runs()
        );
    });
}
