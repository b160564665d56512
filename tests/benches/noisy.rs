//! Noisy neighbour, real clock: tenant B's live workflow while tenant A runs
//! the hostile plugins (spin, hog, deep, chatty) every second and a
//! 20,000-window backfill.
//!
//! B's workflow fires every second (6-field cron) so a short measurement
//! sees many windows; an hourly one is scheduled by the same code. Lateness
//! of a window = start of its first attempt - end of the window. Measured for
//! 10 s with B alone, then for 20 s under A's load. Both tenants have the
//! default quotas (8 concurrent attempts each, weight 1) on 16 slots.
//!
//! `cargo bench -p tidemark-tests --bench noisy`

use std::sync::Arc;
use std::time::Duration;

use tidemark::clock::{Clock, SystemClock};
use tidemark::engine::{Engine, EngineConfig};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins;

mod common;
use common::{lateness, report_lateness};

async fn push(engine: &Engine, tenant: &str, name: &str, path: &str) {
    engine
        .push_plugin(tenant, name, std::fs::read(path).expect("plugin"))
        .await
        .expect("push");
}

async fn apply(engine: &Engine, tenant: &str, toml: &str) {
    engine
        .apply_workflow(tenant, RawWorkflow::from_toml(toml).expect("toml"))
        .await
        .expect("apply");
}

fn main() {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let store = Arc::new(tidemark::store::SledStore::open(dir.path()).expect("store"));
        let executor = common::executor(128);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = EngineConfig {
            max_concurrent_attempts: 16,
            ..EngineConfig::default()
        };
        let engine = Engine::open(store, executor, clock.clone(), config)
            .await
            .expect("engine");
        push(&engine, "b", "hello", plugins::HELLO).await;
        apply(&engine, "b", "name = \"live\"\ncatchup = false\n[schedule]\ncron = \"* * * * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n").await;
        for (name, path) in [
            ("hello", plugins::HELLO),
            ("spin", plugins::SPIN),
            ("hog", plugins::HOG),
            ("deep", plugins::DEEP),
            ("chatty", plugins::CHATTY),
        ] {
            push(&engine, "a", name, path).await;
        }

        let driver = engine.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            driver
                .run_until(
                    async {
                        let _ = stop_rx.await;
                    },
                    Duration::from_secs(5),
                )
                .await
                .expect("the store kept accepting writes");
        });

        let t0 = clock.now_ms();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t1 = clock.now_ms();
        // A: every second, four hostile tasks (spin burns its 2 s deadline),
        // and a 20,000-window backfill of a trivial workflow.
        apply(&engine, "a", "name = \"hostile\"\ncatchup = false\nmax_active_runs = 100\n[schedule]\ncron = \"* * * * * *\"\nstart = \"2024-01-01\"\n\
            [[tasks]]\nname = \"spin\"\nplugin = \"spin\"\ntimeout = \"2s\"\n[[tasks]]\nname = \"hog\"\nplugin = \"hog\"\n\
            [[tasks]]\nname = \"deep\"\nplugin = \"deep\"\n[[tasks]]\nname = \"chatty\"\nplugin = \"chatty\"\n").await;
        apply(&engine, "a", "name = \"bulk\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2010-01-01\"\n\
            [[tasks]]\nname = \"t\"\nplugin = \"hello\"\n").await;
        let req = serde_json::json!({"workflow": "bulk", "start": "2020-01-01T00:00:00Z", "end": "2022-04-12T08:00:00Z", "parallelism": 64});
        let b = engine
            .create_backfill("a", serde_json::from_value(req).expect("req"))
            .await
            .expect("create")
            .expect("not dry");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let t2 = clock.now_ms();
        let progress = engine.backfill("a", b.id).expect("read").expect("exists");
        let usage = engine.usage("a").expect("usage");
        let _ = stop_tx.send(());
        let _ = handle.await;

        report_lateness("B alone (10 s)", &lateness(&engine, "b", "live", t0 + 1000, t1));
        report_lateness(
            "B while A runs hostile plugins + a 20,000-window backfill (20 s)",
            &lateness(&engine, "b", "live", t1 + 1000, t2),
        );
        let hostile = engine
            .runs_of("a", "hostile", t1, t2, usize::MAX)
            .expect("runs")
            .len();
        println!(
            "A meanwhile: {hostile} hostile runs, backfill {} of {:?} windows done ({:.0} windows/s), fuel burned {}",
            progress.succeeded,
            progress.estimated_total,
            progress.succeeded as f64 / ((t2 - t1) as f64 / 1000.0),
            usage.fuel_consumed
        );
    });
}
