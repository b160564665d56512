//! Engine throughput: the 3-task ETL workflow with trivial plugins over
//! 10,000 hourly windows, durable state (sled, group commit), manual clock.
//!
//! `cargo bench -p tidemark-tests --bench engine` (WINDOWS=N, ATTEMPTS=N
//! concurrent attempts).

use std::sync::Arc;
use std::time::Instant;

use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::run::RunState;
use tidemark::store::SledStore;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins;

const H: i64 = 3_600_000;
const T0: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

mod common;

fn main() {
    let windows = env("WINDOWS", 10_000) as i64;
    let attempts = env("ATTEMPTS", 8);
    let runtime = common::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let store = Arc::new(SledStore::open(dir.path()).expect("store"));
        let executor = common::executor(64);
        let clock = Arc::new(ManualClock::new(T0 + windows * H));
        let config = EngineConfig { max_concurrent_attempts: attempts, max_new_runs_per_tick: 1000, ..EngineConfig::default() };
        let engine = Engine::open(store, executor, clock, config).await.expect("engine");
        engine.push_plugin("default", "hello", std::fs::read(plugins::HELLO).expect("plugin")).await.expect("push");
        let wf = r#"
name = "etl"
max_active_runs = 64
[schedule]
cron = "0 * * * *"
start = "2024-01-01T00:00:00Z"
[[tasks]]
name = "extract"
plugin = "hello"
[[tasks]]
name = "transform"
plugin = "hello"
depends_on = ["extract"]
[[tasks]]
name = "load"
plugin = "hello"
depends_on = ["transform"]
"#;
        engine.apply_workflow("default", RawWorkflow::from_toml(wf).expect("toml")).await.expect("apply");
        let started = Instant::now();
        engine.settle().await.expect("settle");
        let elapsed = started.elapsed();
        let runs = engine.runs_of("default", "etl", i64::MIN, i64::MAX, usize::MAX).expect("runs");
        assert_eq!(runs.len() as i64, windows);
        let bad: Vec<_> = runs.iter().filter(|r| r.state != RunState::Succeeded).collect();
        assert!(bad.is_empty(), "{} not succeeded, first: {:?}", bad.len(), bad.first());
        let task_runs = windows as f64 * 3.0;
        println!(
            "{windows} windows x 3 tasks, {attempts} concurrent attempts: {:.2} s, {:.0} task-runs/s, {:.0} µs per task-run (wall, including run creation and durable commits)",
            elapsed.as_secs_f64(),
            task_runs / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / task_runs
        );
    });
}
