//! The store's contract for runs and their index, cursors, attempts and
//! idempotency keys, and for version numbers under concurrent pushes, on
//! both backends.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use tidemark::executor::Trigger;
use tidemark::run::{
    Cause, DatasetRead, Provenance, Requester, RetryRequest, RunState, UpstreamRun,
};
use tidemark::store::{AttemptRecord, Changes, StateStore};
use tidemark::workflow::RawWorkflow;

use super::{conformance, open_pg, open_sled, raw_workflow, run, staged, H, T0};

conformance!(
    runs_windows_cursors_attempts_and_idempotency,
    a_partition_version_names_its_content,
);

fn runs_windows_cursors_attempts_and_idempotency(store: &dyn StateStore) {
    let first = store.next_run_id().unwrap();
    let second = store.next_run_id().unwrap();
    assert!(second > first && first > 0);
    // Ids only grow, also past a block of ids taken at once.
    let ids: Vec<u64> = (0..200).map(|_| store.next_run_id().unwrap()).collect();
    assert!(
        ids.windows(2).all(|p| p[1] > p[0]) && ids[0] > second,
        "{ids:?}"
    );
    // Provenance and an attempt's reads round-trip on both backends.
    let mut r1 = run(1, "t", "wf", 0, Trigger::Scheduled).with_provenance(Provenance {
        cause: Cause::Backfill {
            backfill: 9,
            reason: "failed".into(),
        },
        requested_by: Requester::Token {
            id: 4,
            label: "ci".into(),
        },
        upstream: vec![UpstreamRun {
            workflow: "up".into(),
            window_start: T0,
            window_end: T0 + H,
            run_id: 7,
        }],
        retries: vec![RetryRequest {
            requested_by: Requester::Token {
                id: 5,
                label: "on-call".into(),
            },
            at: T0 + 2 * H,
        }],
    });
    let r2 = run(2, "t", "wf", 1, Trigger::Scheduled);
    let event = run(3, "t", "wf", 0, Trigger::Event);
    let attempt = |task: &str, n: u32| AttemptRecord {
        run_id: 1,
        task: task.into(),
        attempt: n,
        started_ms: 0,
        ended_ms: 1,
        error_kind: None,
        // Guest text may hold any character, NUL included.
        message: "ok\0with a nul".into(),
        fuel: Some(5),
        log: Vec::new(),
        http: Vec::new(),
        plugin: Some("hello".into()),
        bytes_written: Some(3),
        plugin_digest: Some("sha256:ab".into()),
        reads: vec![DatasetRead {
            dataset: "orders".into(),
            partition: T0,
            version: Some("sha256:cd".into()),
        }],
        reads_omitted: 2,
    };
    let changes = Changes {
        runs: vec![r1.clone(), r2.clone(), event.clone()],
        cursors: vec![("t".into(), "wf".into(), T0 + H)],
        attempts: vec![
            ("t".into(), attempt("b", 1)),
            ("t".into(), attempt("a", 2)),
            ("t".into(), attempt("a", 1)),
        ],
        idempotency: vec![("t".into(), "wf".into(), "key-1".into(), 3)],
        ..Changes::default()
    };
    store.apply(&changes).unwrap();
    assert_eq!(store.run_get("t", 1).unwrap(), Some(r1.clone()));
    assert_eq!(store.run_get("u", 1).unwrap(), None);
    let active: Vec<u64> = store.runs_active().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(active, [1, 2, 3]);
    // The event run is not the window's run.
    let w = store.window_get("t", "wf", T0).unwrap().unwrap();
    assert_eq!((w.run_id, w.state), (1, RunState::Queued));
    assert_eq!(store.cursor_get("t", "wf").unwrap(), Some(T0 + H));
    assert_eq!(store.idempotency_get("t", "wf", "key-1").unwrap(), Some(3));
    assert_eq!(store.idempotency_get("t", "wf", "key-2").unwrap(), None);
    let attempts: Vec<(String, u32)> = store
        .attempts("t", 1)
        .unwrap()
        .into_iter()
        .map(|a| (a.task, a.attempt))
        .collect();
    assert_eq!(
        attempts,
        [("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]
    );
    assert_eq!(store.attempts("t", 1).unwrap()[0].message, "ok\0with a nul");
    assert_eq!(store.attempts("t", 1).unwrap()[0], attempt("a", 1));

    // The window's run ends and a retry replaces it in the same change; a
    // run's last state in a change is the one that counts, and the older
    // run, even when it comes after the newer one, does not take the
    // window's entry back.
    let mut running = r1.clone();
    running.state = RunState::Running;
    r1.state = RunState::Failed;
    let retry = run(4, "t", "wf", 0, Trigger::Manual);
    let changes = Changes {
        runs: vec![running, retry.clone(), r1.clone()],
        ..Changes::default()
    };
    store.apply(&changes).unwrap();
    let w = store.window_get("t", "wf", T0).unwrap().unwrap();
    assert_eq!((w.run_id, w.state), (4, RunState::Queued));
    // A late change of the older run leaves the window's newest alone.
    store
        .apply(&Changes {
            runs: vec![r1.clone()],
            ..Changes::default()
        })
        .unwrap();
    assert_eq!(store.window_get("t", "wf", T0).unwrap().unwrap().run_id, 4);
    let active: Vec<u64> = store.runs_active().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(active, [2, 3, 4]);
    let windows: Vec<(i64, u64)> = store
        .windows("t", "wf", T0, T0 + 10 * H, 10)
        .unwrap()
        .into_iter()
        .map(|(s, w)| (s, w.run_id))
        .collect();
    assert_eq!(windows, [(T0, 4), (T0 + H, 2)]);
    // Several windows at once, in the order asked, with the missing ones.
    let at: Vec<Option<u64>> = store
        .windows_at("t", "wf", &[T0 + 5 * H, T0 + H, T0, T0 - H])
        .unwrap()
        .into_iter()
        .map(|w| w.map(|w| w.run_id))
        .collect();
    assert_eq!(at, [None, Some(2), Some(4), None]);
    assert!(store.windows_at("t", "wf", &[]).unwrap().is_empty());
    assert_eq!(store.windows_at("u", "wf", &[T0]).unwrap(), [None]);
    assert_eq!(
        store.windows("t", "wf", T0, T0 + 10 * H, 1).unwrap().len(),
        1
    );
    assert!(store
        .windows("t", "wf", T0 + H + 1, T0 + 10 * H, 10)
        .unwrap()
        .is_empty());
    assert_eq!(
        store.window_latest("t", "wf").unwrap().map(|(s, _)| s),
        Some(T0 + H)
    );
    assert_eq!(store.window_latest("t", "other").unwrap(), None);
    // Newest first, bounded.
    let newest: Vec<_> = store
        .windows_newest("t", "wf", 10)
        .unwrap()
        .into_iter()
        .map(|(s, w)| (s, w.run_id))
        .collect();
    assert_eq!(newest, [(T0 + H, 2), (T0, 4)]);
    assert_eq!(store.windows_newest("t", "wf", 1).unwrap().len(), 1);
}

/// Concurrent pushes of versions: each number is handed out once and
/// stores what its pusher was told.
fn concurrent_version_pushes_get_distinct_versions(store: Arc<dyn StateStore>) {
    const PUSHES: usize = 12;
    let barrier = Arc::new(Barrier::new(PUSHES));
    let handles: Vec<_> = (0..PUSHES)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let digest = format!("sha256:{}", i % 3);
                let p = store
                    .plugin_put("t", "p", &digest, b"\0asm", &[], 0)
                    .unwrap();
                let w = store
                    .workflow_put("t", &raw_workflow("wf", (i % 3) as u32), 0)
                    .unwrap();
                (p.version, p.digest, w.version, w.raw)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let plugins: HashMap<u32, String> = store
        .plugin_list("t")
        .unwrap()
        .into_iter()
        .map(|m| (m.version, m.digest))
        .collect();
    let workflows: HashMap<u32, RawWorkflow> = store
        .workflow_versions("t", "wf")
        .unwrap()
        .into_iter()
        .map(|w| (w.version, w.raw))
        .collect();
    for (pv, digest, wv, raw) in &results {
        assert_eq!(plugins.get(pv), Some(digest), "plugin v{pv}");
        assert_eq!(workflows.get(wv), Some(raw), "workflow v{wv}");
    }
    let mut versions: Vec<u32> = plugins.keys().copied().collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=versions.len() as u32).collect::<Vec<_>>());
}

#[test]
fn concurrent_version_pushes_sled() {
    concurrent_version_pushes_get_distinct_versions(open_sled());
}

#[test]
fn concurrent_version_pushes_postgres() {
    concurrent_version_pushes_get_distinct_versions(open_pg());
}

/// What an attempt's read records: the same content has the same version,
/// on either backend; other content, another one; no partition, none.
fn a_partition_version_names_its_content(store: &dyn StateStore) {
    let version = |s: &dyn StateStore, tenant, p| s.partition_version(tenant, "events", p).unwrap();
    assert_eq!(version(store, "t", T0), None);
    let rows = [("events", "k1", "a"), ("events", "k2", "b")];
    store.dataset_commit("t", T0, &staged(&rows)).unwrap();
    let first = version(store, "t", T0).expect("a committed partition has a version");
    assert_eq!(version(store, "u", T0), None, "another tenant's");
    assert_eq!(version(store, "t", T0 + H), None, "another window's");
    // A rerun that writes the same rows: nothing a reader could tell apart.
    store.dataset_commit("t", T0, &staged(&rows)).unwrap();
    assert_eq!(version(store, "t", T0).as_ref(), Some(&first));
    store
        .dataset_commit("t", T0, &staged(&[("events", "k1", "late")]))
        .unwrap();
    assert_ne!(version(store, "t", T0).as_ref(), Some(&first));
    // The embedded store names the same content alike.
    let sled = open_sled();
    sled.dataset_commit("t", T0, &staged(&rows)).unwrap();
    assert_eq!(version(sled.as_ref(), "t", T0), Some(first));
}
