//! Live-run lateness under a big backfill, real clock.
//!
//! A live workflow fires every second (6-field cron). Lateness of a window =
//! start of its first attempt - end of the window (when it became due).
//! Measured for 10 s alone, then for 20 s while a 50,000-window backfill of
//! another workflow (3 trivial tasks, parallelism 64) runs.
//!
//! `cargo bench -p tidemark-tests --bench lateness`

use std::sync::Arc;
use std::time::Duration;

use tidemark::clock::{Clock, SystemClock};
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::{Executor, ExecutorConfig};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins;

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Lateness (ms) of the live windows that ended in `[from, to)`.
fn lateness(engine: &Engine, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    for run in engine
        .runs_of("bench", "live", from - 1000, to, usize::MAX)
        .expect("runs")
    {
        if run.window_end < from || run.window_end >= to {
            continue;
        }
        if let Some(first) = engine
            .attempts("bench", run.id)
            .expect("attempts")
            .iter()
            .map(|a| a.started_ms)
            .min()
        {
            out.push(first - run.window_end);
        }
    }
    out.sort_unstable();
    out
}

fn report(label: &str, l: &[i64]) {
    println!(
        "{label}: {} live windows, lateness median {} ms, p99 {} ms, max {} ms",
        l.len(),
        percentile(l, 0.5),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(0)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let store = Arc::new(tidemark::store::SledStore::open(dir.path()).expect("store"));
        let executor = Arc::new(Executor::new(ExecutorConfig { cache_dir: None, max_instances: Some(128) }).expect("executor"));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let engine = Engine::open(store, executor, clock.clone(), EngineConfig { max_concurrent_attempts: 16, ..EngineConfig::default() }).await.expect("engine");
        engine.push_plugin("bench", "hello", std::fs::read(plugins::HELLO).expect("plugin")).await.expect("push");
        let live = "name = \"live\"\ncatchup = false\n[schedule]\ncron = \"* * * * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n";
        engine.apply_workflow("bench", RawWorkflow::from_toml(live).expect("toml")).await.expect("apply");
        let bulk = "name = \"bulk\"\npaused = true\nmax_active_runs = 10000\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2010-01-01\"\n\
            [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n[[tasks]]\nname = \"b\"\nplugin = \"hello\"\ndepends_on = [\"a\"]\n\
            [[tasks]]\nname = \"c\"\nplugin = \"hello\"\ndepends_on = [\"b\"]\n";
        engine.apply_workflow("bench", RawWorkflow::from_toml(bulk).expect("toml")).await.expect("apply");

        let driver = engine.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            driver.run_until(async { let _ = stop_rx.await; }, Duration::from_secs(5)).await;
        });

        let t0 = clock.now_ms();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t1 = clock.now_ms();
        let req = serde_json::json!({"workflow": "bulk", "start": "2010-01-01T00:00:00Z", "end": "2015-09-14T08:00:00Z", "parallelism": 64});
        let b = engine.create_backfill("bench", serde_json::from_value(req).expect("req")).await.expect("create").expect("not dry");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let t2 = clock.now_ms();
        let progress = engine.backfill("bench", b.id).expect("read").expect("exists");
        let _ = stop_tx.send(());
        let _ = handle.await;

        report("alone (10 s)", &lateness(&engine, t0 + 1000, t1));
        report("during a 50,000-window backfill (20 s)", &lateness(&engine, t1 + 1000, t2));
        println!(
            "backfill meanwhile: {} of {:?} windows done ({:.0} windows/s)",
            progress.succeeded,
            progress.estimated_total,
            progress.succeeded as f64 / ((t2 - t1) as f64 / 1000.0)
        );
    });
}
