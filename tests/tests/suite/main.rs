//! Tidemark's black-box integration suite: one binary, one module per area.

mod access;
mod api;
mod backfill;
mod cli;
mod cloud_objects;
mod cluster;
mod compile;
mod connections;
mod console;
mod contract;
mod daemon;
mod datasets;
mod driver;
mod egress;
mod engine;
mod estimates;
mod exactly_once;
mod gaps;
mod handover;
mod http_sdk;
mod integrity;
mod languages;
mod limits;
mod listing;
mod notifications;
mod objects;
mod offpeak;
mod orders_example;
mod output_checks;
mod plugins;
mod postgres_daemon;
mod provenance;
mod pyclient;
mod quotas;
mod store_conformance;
mod strip;
mod trigger;
mod validation;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tidemark::executor::{
    AttemptReport, Executor, ExecutorConfig, Invocation, Limits, Plugin, Trigger,
};
use tidemark::store::{SledStore, TaskData};
use tidemark_tests::shared_cache_dir;

/// One executor for the whole suite: every test also checks that the engine
/// keeps working after whatever the tests before it did to it.
pub fn executor() -> &'static Executor {
    static EXECUTOR: OnceLock<Executor> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        Executor::new(ExecutorConfig {
            cache_dir: Some(shared_cache_dir()),
            max_instances: Some(64),
        })
        .expect("executor")
    })
}

pub fn load(path: &str) -> Arc<Plugin> {
    let wasm = std::fs::read(path).expect("reading plugin");
    executor().load(&wasm).expect("loading plugin")
}

/// 2024-03-01T00:00:00Z.
pub const DAY: i64 = 1_709_251_200_000;
pub const HOUR: i64 = 3_600_000;

pub fn invocation(task: &str, window_start_ms: i64, params: &[(&str, &str)]) -> Invocation {
    Invocation {
        tenant: "acme".into(),
        workflow: "wf".into(),
        task: task.into(),
        run_id: "run-1".into(),
        window_start_ms,
        window_end_ms: window_start_ms + HOUR,
        timezone: "Europe/Berlin".into(),
        attempt: 1,
        trigger: Trigger::Scheduled,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload: Vec::new(),
    }
}

pub fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

pub fn store() -> Arc<SledStore> {
    Arc::new(SledStore::temporary().expect("temporary store"))
}

pub async fn run(
    plugin: &str,
    inv: &Invocation,
    limits: &Limits,
    data: Arc<dyn TaskData>,
) -> AttemptReport {
    executor().run(&load(plugin), inv, limits, data).await
}

/// Runs and, on success, commits the outputs as the scheduler will.
pub async fn run_and_commit(plugin: &str, inv: &Invocation, data: Arc<SledStore>) -> AttemptReport {
    let report = run(plugin, inv, &limits(), data.clone()).await;
    if report.succeeded() {
        data.dataset_commit(&inv.tenant, inv.window_start_ms, &report.outputs)
            .expect("commit");
    }
    report
}

/// The trivial plugin still works: the engine survived what came before.
pub async fn assert_engine_healthy() {
    let r = run(
        tidemark_tests::plugins::HELLO,
        &invocation("hello", DAY, &[]),
        &limits(),
        store(),
    )
    .await;
    assert_eq!(r.result, Ok("hello".to_string()), "log: {:?}", r.log);
}

/// A fresh executor sharing the suite's compiled-component cache.
pub fn engine_executor() -> Arc<Executor> {
    Arc::new(
        Executor::new(ExecutorConfig {
            cache_dir: Some(shared_cache_dir()),
            max_instances: Some(32),
        })
        .expect("executor"),
    )
}
