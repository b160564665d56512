//! Per-language cost of a task: component size, compile once, load from the
//! compiled-component cache, first attempt after loading, then warm
//! attempts (fresh Store, instantiate from the cached `InstancePre`, run,
//! drop) and fuel per run. Two tasks per language: a trivial one, and the
//! ETL transform over a window of 500 events.
//!
//! `cargo bench -p tidemark-tests --bench languages` (ATTEMPTS=N, default
//! 1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::executor::{Executor, ExecutorConfig, Invocation, Limits, Plugin, Trigger};
use tidemark::store::{SledStore, TaskData};
use tidemark_tests::plugins;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn invocation(task: &str, params: &[(&str, &str)]) -> Invocation {
    Invocation {
        tenant: "bench".into(),
        workflow: "wf".into(),
        task: task.into(),
        run_id: "r".into(),
        window_start_ms: 1_709_251_200_000,
        window_end_ms: 1_709_254_800_000,
        timezone: "UTC".into(),
        attempt: 1,
        trigger: Trigger::Scheduled,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload: vec![],
    }
}

/// Compiles `path` without a cache, then loads it through a warm cache;
/// returns the size and the two times.
fn load(executor_config: &ExecutorConfig, path: &str) -> (usize, Duration, Duration) {
    let wasm = std::fs::read(path).expect("plugin");
    let t = Instant::now();
    Executor::new(ExecutorConfig::default())
        .expect("executor")
        .load(&wasm)
        .expect("compile");
    let compile = t.elapsed();
    Executor::new(executor_config.clone())
        .expect("executor")
        .load(&wasm)
        .expect("fill the cache");
    let warm = Executor::new(executor_config.clone()).expect("executor");
    let t = Instant::now();
    let p = warm.load(&wasm).expect("load");
    let cached = t.elapsed();
    assert!(p.from_cache);
    (wasm.len(), compile, cached)
}

fn main() {
    let attempts: usize = std::env::var("ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache = tempfile::tempdir().expect("tempdir");
    let config = ExecutorConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        max_instances: None,
    };
    let executor = Executor::new(config.clone()).expect("executor");
    let limits = Limits::default();

    // One window of 500 events, committed as the Rust extract writes it.
    let store = Arc::new(SledStore::temporary().expect("store"));
    let data: Arc<dyn TaskData> = store.clone();
    let extract = executor
        .load(&std::fs::read(plugins::ETL_EXTRACT).expect("extract"))
        .expect("load");
    let inv = invocation("extract", &[("events", "500")]);
    let r = runtime.block_on(executor.run(&extract, &inv, &limits, data.clone()));
    assert!(r.succeeded(), "{:?}", r.result);
    store
        .dataset_commit("bench", inv.window_start_ms, &r.outputs)
        .expect("commit");

    println!(
        "{:<11} {:<10} {:>9} {:>11} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "language",
        "task",
        "size MB",
        "compile ms",
        "cache ms",
        "first ms",
        "median ms",
        "p99 ms",
        "fuel/run"
    );
    let cases = [
        ("rust", "trivial", plugins::HELLO),
        ("python", "trivial", plugins::PY_HOSTILE),
        ("javascript", "trivial", plugins::JS_HOSTILE),
        ("rust", "transform", plugins::ETL_TRANSFORM),
        ("python", "transform", plugins::PY_ETL_TRANSFORM),
        ("javascript", "transform", plugins::JS_ETL_TRANSFORM),
    ];
    for (lang, task, path) in cases {
        let (size, compile, cached) = load(&config, path);
        // From the disk cache into the executor that runs it.
        let plugin: Arc<Plugin> = executor
            .load(&std::fs::read(path).expect("plugin"))
            .expect("load");
        let inv = invocation(task, &[]);
        let mut times = Vec::with_capacity(attempts);
        let mut fuel = 0;
        let first = runtime.block_on(async {
            let t = Instant::now();
            let r = executor.run(&plugin, &inv, &limits, data.clone()).await;
            assert!(r.succeeded(), "{lang} {task}: {:?}", r.result);
            let first = t.elapsed();
            for _ in 0..attempts {
                let t = Instant::now();
                let r = executor.run(&plugin, &inv, &limits, data.clone()).await;
                times.push(t.elapsed());
                assert!(r.succeeded(), "{lang} {task}: {:?}", r.result);
                fuel = r.fuel_consumed.unwrap_or(0);
            }
            first
        });
        times.sort();
        println!(
            "{lang:<11} {task:<10} {:>9.1} {:>11.0} {:>10.2} {:>10.2} {:>10.3} {:>10.3} {:>12}",
            size as f64 / 1e6,
            ms(compile),
            ms(cached),
            ms(first),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            fuel
        );
    }
}
