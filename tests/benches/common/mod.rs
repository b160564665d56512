//! What the benchmarks share: the runtime, an executor without a disk cache,
//! percentiles and live-lateness measurement.

// Each bench uses a subset.
#![allow(dead_code)]

pub mod daemon;

use std::sync::Arc;

use tidemark::engine::Engine;
use tidemark::executor::{Executor, ExecutorConfig};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An executor that compiles every plugin afresh (no disk cache), with room
/// for `max_instances` instances in its pool.
pub fn executor(max_instances: u32) -> Arc<Executor> {
    Arc::new(
        Executor::new(ExecutorConfig {
            cache_dir: None,
            max_instances: Some(max_instances),
        })
        .expect("executor"),
    )
}

/// Peak resident set size (`VmHWM`) of process `pid` (`"self"` for this
/// one) in MB, from /proc (Linux); 0 where it cannot be read.
pub fn peak_rss_mb(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Start lateness (ms) of `workflow`'s windows that ended in `[from, to)`:
/// the start of a window's first attempt minus the window's end (when it
/// became due). Sorted.
pub fn lateness(engine: &Engine, tenant: &str, workflow: &str, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    for run in engine
        .runs_of(tenant, workflow, from - 1000, to, usize::MAX)
        .expect("runs")
    {
        if run.window_end < from || run.window_end >= to {
            continue;
        }
        if let Some(first) = engine
            .attempts(tenant, run.id)
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

pub fn report_lateness(label: &str, l: &[i64]) {
    println!(
        "{label}: {} live windows, start lateness median {} ms, p99 {} ms, max {} ms",
        l.len(),
        percentile(l, 0.5),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(0)
    );
}
