//! A finished attempt hands its slot straight to the next task of its run,
//! unless a run that the last dispatch pass left waiting for a slot has a
//! claim on it first.

use std::sync::Arc;

use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::run::{RunState, TaskState};
use tidemark::store::SledStore;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::HELLO;

/// 2024-03-04T00:00:00Z.
const MON: i64 = 1_709_510_400_000;
const H: i64 = 3_600_000;

async fn engine(slots: usize, tenants: &[&str]) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store,
        crate::engine_executor(),
        Arc::new(ManualClock::new(MON + 24 * H)),
        EngineConfig {
            max_concurrent_attempts: slots,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    let chain = RawWorkflow::from_toml(
        "name = \"chain\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n\
         [[tasks]]\nname = \"b\"\nplugin = \"hello\"\ndepends_on = [\"a\"]\n\
         [[tasks]]\nname = \"c\"\nplugin = \"hello\"\ndepends_on = [\"b\"]\n",
    )
    .unwrap();
    for t in tenants {
        engine
            .push_plugin(t, "hello", std::fs::read(HELLO).unwrap())
            .await
            .unwrap();
        engine.apply_workflow(t, chain.clone()).await.unwrap();
    }
    (engine, dir)
}

async fn backfill_one_window(e: &Engine, tenant: &str) {
    let req = serde_json::json!({"workflow": "chain", "start": "2024-03-04T00:00:00Z", "end": "2024-03-04T01:00:00Z"});
    e.create_backfill(tenant, serde_json::from_value(req).unwrap())
        .await
        .unwrap()
        .unwrap();
}

/// Attempts started per task of the tenant's one run.
fn attempts(e: &Engine, tenant: &str) -> (Vec<u32>, RunState) {
    let runs = e.runs_of(tenant, "chain", i64::MIN, i64::MAX, 10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    (
        runs[0].tasks.iter().map(|t| t.attempts).collect(),
        runs[0].state,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_runs_to_its_end_from_one_dispatch_pass() {
    let (e, _dir) = engine(1, &["alpha"]).await;
    backfill_one_window(&e, "alpha").await;
    // One pass dispatches the first task; no pass runs after it, so the
    // other two can only have started in the slot handed over.
    e.tick().await.unwrap();
    e.wait_idle().await;
    assert_eq!(attempts(&e, "alpha"), (vec![1, 1, 1], RunState::Succeeded));
    let runs = e.runs_of("alpha", "chain", i64::MIN, i64::MAX, 10).unwrap();
    assert!(runs[0]
        .tasks
        .iter()
        .all(|t| t.state == TaskState::Succeeded));
    assert_eq!(e.active_runs(), 0, "the last attempt ended the run");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_goes_to_another_tenant_left_waiting_not_to_the_next_task() {
    let (e, _dir) = engine(1, &["alpha", "beta"]).await;
    backfill_one_window(&e, "alpha").await;
    backfill_one_window(&e, "beta").await;
    // One slot: the pass gives it to alpha (equal passes, name order) and
    // leaves beta waiting.
    e.tick().await.unwrap();
    e.wait_idle().await;
    assert_eq!(attempts(&e, "alpha"), (vec![1, 0, 0], RunState::Running));
    assert_eq!(attempts(&e, "beta").0, vec![0, 0, 0]);
    // The freed slot went back to the pass, which serves beta now (alpha's
    // pass grew by its attempt); beta's next task is held back for alpha
    // in turn.
    e.tick().await.unwrap();
    e.wait_idle().await;
    assert_eq!(attempts(&e, "beta"), (vec![1, 0, 0], RunState::Running));
    assert_eq!(attempts(&e, "alpha").0, vec![1, 0, 0]);
    // Both finish, each task once.
    e.settle().await.unwrap();
    for t in ["alpha", "beta"] {
        assert_eq!(attempts(&e, t), (vec![1, 1, 1], RunState::Succeeded));
    }
}
