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
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins;

mod common;
use common::{lateness, report_lateness};

fn main() {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let store = Arc::new(tidemark::store::SledStore::open(dir.path()).expect("store"));
        let executor = common::executor(128);
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
            driver
                .run_until(async { let _ = stop_rx.await; }, Duration::from_secs(5))
                .await
                .expect("the store kept accepting writes");
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

        report_lateness("alone (10 s)", &lateness(&engine, "bench", "live", t0 + 1000, t1));
        report_lateness("during a 50,000-window backfill (20 s)", &lateness(&engine, "bench", "live", t1 + 1000, t2));
        println!(
            "backfill meanwhile: {} of {:?} windows done ({:.0} windows/s)",
            progress.succeeded,
            progress.estimated_total,
            progress.succeeded as f64 / ((t2 - t1) as f64 / 1000.0)
        );
    });
}
