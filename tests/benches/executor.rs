//! Executor benchmark: per-attempt cost of the trivial plugin (fresh Store,
//! instantiate from the cached `InstancePre`, call, drop), compile time vs
//! load-from-cache time, and fuel per run.
//!
//! `cargo bench -p tidemark-tests --bench executor` (ATTEMPTS=N to change the
//! sample size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::executor::{Executor, ExecutorConfig, Invocation, Limits, Trigger};
use tidemark::store::{SledStore, TaskData};
use tidemark_tests::plugins;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let attempts: usize = std::env::var("ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!("== load: compile vs compiled-component cache");
    for (name, path) in [
        ("hello", plugins::HELLO),
        ("etl-transform", plugins::ETL_TRANSFORM),
    ] {
        let wasm = std::fs::read(path).expect("plugin");
        let cold = Executor::new(ExecutorConfig::default()).expect("executor");
        let t = Instant::now();
        cold.load(&wasm).expect("load");
        let compile = t.elapsed();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ExecutorConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            max_instances: None,
        };
        Executor::new(config.clone())
            .expect("executor")
            .load(&wasm)
            .expect("load");
        let warm = Executor::new(config).expect("executor");
        let t = Instant::now();
        let p = warm.load(&wasm).expect("load");
        let cached = t.elapsed();
        assert!(p.from_cache);
        println!(
            "{name:>14}: {} bytes, compile {:.1} ms, load from cache {:.3} ms ({:.0}x faster)",
            wasm.len(),
            compile.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3,
            compile.as_secs_f64() / cached.as_secs_f64()
        );
    }

    println!("== attempt: fresh Store + instantiate (pooling, cached InstancePre) + run + drop");
    let executor = Executor::new(ExecutorConfig::default()).expect("executor");
    let plugin = executor
        .load(&std::fs::read(plugins::HELLO).expect("plugin"))
        .expect("load");
    let data: Arc<dyn TaskData> = Arc::new(SledStore::temporary().expect("store"));
    let limits = Limits::default();
    let inv = Invocation {
        tenant: "bench".into(),
        workflow: "wf".into(),
        task: "hello".into(),
        run_id: "r".into(),
        window_start_ms: 0,
        window_end_ms: 3_600_000,
        timezone: "UTC".into(),
        attempt: 1,
        trigger: Trigger::Scheduled,
        params: vec![],
        payload: vec![],
    };
    let mut times = Vec::with_capacity(attempts);
    let mut fuel = 0u64;
    runtime.block_on(async {
        // Warm-up: page in the pool slots and code.
        for _ in 0..500 {
            let r = executor.run(&plugin, &inv, &limits, data.clone()).await;
            assert!(r.succeeded());
        }
        for _ in 0..attempts {
            let t = Instant::now();
            let r = executor.run(&plugin, &inv, &limits, data.clone()).await;
            times.push(t.elapsed());
            fuel = r.fuel_consumed.unwrap_or(0);
            assert!(r.succeeded());
        }
    });
    times.sort();
    println!(
        "hello x{attempts}: median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, min {:.1} µs; fuel per run {fuel}",
        micros(percentile(&times, 0.5)),
        micros(percentile(&times, 0.9)),
        micros(percentile(&times, 0.99)),
        micros(times[0]),
    );
}
