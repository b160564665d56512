//! Backfill benchmark.
//!
//! 1. Creating a backfill over 1,000,000 windows (a minutely workflow): time
//!    to answer and peak RSS (nothing is materialized up front).
//! 2. Backfilling 87,600 hourly windows (10 years) of a 3-task workflow with
//!    trivial plugins, end to end, durable: wall time, task-runs/s, peak RSS.
//!
//! 3. The state strip of the backfill of part 1 (window states counted in
//!    200 and 1,000 time buckets, and zoomed in to 30 and 7 days) once all
//!    1,000,000 windows have records, written through `StateStore::apply`
//!    as materialization writes them: time and response size.
//!
//! `cargo bench -p tidemark-tests --bench backfill` (WINDOWS=N for part 2,
//! ATTEMPTS=N concurrent attempts, PARALLELISM=N windows at once).

use std::sync::Arc;
use std::time::Instant;

use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::store::{BackfillState, BackfillWindow, Changes, SledStore, WindowState};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins;

const T0: i64 = 1_262_304_000_000; // 2010-01-01T00:00:00Z
const H: i64 = 3_600_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("instant")
        .to_rfc3339()
}

fn wf(name: &str, cron: &str) -> RawWorkflow {
    RawWorkflow::from_toml(&format!(
        "name = \"{name}\"\npaused = true\nmax_active_runs = 10000\n[schedule]\ncron = \"{cron}\"\nstart = \"2010-01-01\"\n\
         [[tasks]]\nname = \"extract\"\nplugin = \"hello\"\n[[tasks]]\nname = \"transform\"\nplugin = \"hello\"\ndepends_on = [\"extract\"]\n\
         [[tasks]]\nname = \"load\"\nplugin = \"hello\"\ndepends_on = [\"transform\"]\n"
    ))
    .expect("workflow")
}

mod common;

fn main() {
    let windows = env("WINDOWS", 87_600) as i64;
    let attempts = env("ATTEMPTS", 32);
    let parallelism = env("PARALLELISM", 64);
    let runtime = common::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let store = Arc::new(SledStore::open(dir.path()).expect("store"));
        let executor = common::executor(128);
        let clock = Arc::new(ManualClock::new(T0 + 20 * 365 * 24 * H));
        let config = EngineConfig { max_concurrent_attempts: attempts, ..EngineConfig::default() };
        let engine = Engine::open(store, executor, clock, config).await.expect("engine");
        engine.push_plugin("bench", "hello", std::fs::read(plugins::HELLO).expect("plugin")).await.expect("push");
        engine.apply_workflow("bench", wf("minutely", "* * * * *")).await.expect("apply");
        engine.apply_workflow("bench", wf("hourly", "0 * * * *")).await.expect("apply");

        let rss_before = common::peak_rss_mb("self");
        let t = Instant::now();
        let req = serde_json::json!({"workflow": "minutely", "start": iso(T0), "end": iso(T0 + 1_000_000 * 60_000)});
        let million = engine.create_backfill("bench", serde_json::from_value(req).expect("request")).await.expect("create").expect("not dry");
        let created = t.elapsed();
        println!(
            "create a 1,000,000-window backfill: {:.1} ms, peak RSS {:.0} MB (was {:.0} MB before)",
            created.as_secs_f64() * 1e3,
            common::peak_rss_mb("self"),
            rss_before
        );
        engine
            .backfill_action("bench", million.id, tidemark::engine::BackfillAction::Cancel { interrupt: false })
            .await
            .expect("cancel");

        let req = serde_json::json!({"workflow": "hourly", "start": iso(T0), "end": iso(T0 + windows * H), "parallelism": parallelism});
        let t = Instant::now();
        let b = engine.create_backfill("bench", serde_json::from_value(req).expect("request")).await.expect("create").expect("not dry");
        engine.settle().await.expect("settle");
        let elapsed = t.elapsed();
        let done = engine.backfill("bench", b.id).expect("read").expect("exists");
        assert_eq!(done.state, BackfillState::Succeeded, "{done:?}");
        assert_eq!(done.succeeded as i64, windows);
        let task_runs = windows as f64 * 3.0;
        println!(
            "backfill {windows} hourly windows x 3 tasks (parallelism {parallelism}, {attempts} attempts): {:.1} s, {:.0} task-runs/s, {:.0} windows/s, peak RSS {:.0} MB",
            elapsed.as_secs_f64(),
            task_runs / elapsed.as_secs_f64(),
            windows as f64 / elapsed.as_secs_f64(),
            common::peak_rss_mb("self")
        );
        // 3. Its state strip once all 1,000,000 windows have records, as
        //    materialization writes them: running, then each window again
        //    with the state it ended in (the write path that moves tile
        //    counts from one state to another).
        for pass in ["write 1,000,000 window records (running)", "rewrite them with their end states"] {
            let t = Instant::now();
            for chunk in (0..1_000_000i64).collect::<Vec<_>>().chunks(10_000) {
                let mut changes = Changes::default();
                for &i in chunk {
                    let state = match i {
                        _ if pass.starts_with("write") => WindowState::Running,
                        i if i % 100 == 0 => WindowState::Failed,
                        i if i % 7 == 0 => WindowState::Skipped,
                        _ => WindowState::Succeeded,
                    };
                    let w = BackfillWindow {
                        backfill: million.id,
                        workflow: "minutely".into(),
                        window_start: T0 + i * 60_000,
                        window_end: T0 + (i + 1) * 60_000,
                        state,
                        run_id: Some(i as u64),
                        reason: String::new(),
                    };
                    changes.backfill_windows.push(("bench".into(), w));
                }
                engine.store().apply(&changes).expect("write windows");
            }
            println!("{pass}: {:.1} s", t.elapsed().as_secs_f64());
        }
        // The whole range, then zoomed in: 30 days (buckets still wider
        // than a tile of the minutely workflow) and 7 days (narrower).
        let day = 24 * H;
        let cases = [
            ("1,000,000 windows", None, 200usize, 1_000_000u64),
            ("1,000,000 windows", None, 1000, 1_000_000),
            ("30 days (43,200 windows)", Some((T0 + 100 * day, T0 + 130 * day)), 200, 43_200),
            ("7 days (10,080 windows)", Some((T0 + 100 * day, T0 + 107 * day)), 200, 10_080),
        ];
        for (label, range, buckets, windows) in cases {
            let range = range.map_or((None, None), |(a, b)| (Some(a), Some(b)));
            let mut times = Vec::new();
            let mut bytes = 0;
            let mut returned = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let strip = engine.backfill_strip("bench", million.id, None, range, buckets).expect("strip");
                bytes = serde_json::to_vec(&strip).expect("json").len();
                times.push(t.elapsed());
                returned = strip.buckets.len();
                let total: u64 = strip.buckets.iter().map(|b| b.counts.total() + b.pending).sum();
                assert_eq!(total, windows);
                assert_eq!(strip.buckets.iter().map(|b| b.counts.total()).sum::<u64>(), windows);
                assert_eq!(strip.buckets.iter().map(|b| b.counts.running).sum::<u64>(), 0);
            }
            times.sort();
            println!(
                "state strip of {label} in {buckets} buckets ({returned} returned): median {:.1} ms (min {:.1} ms), {bytes} bytes of JSON",
                times[2].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3
            );
        }

    });
}
