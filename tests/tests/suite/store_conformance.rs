//! The store's contract, run against both backends: every scenario here is
//! one function over `&dyn StateStore`, and `conformance!` makes a test of
//! it for the embedded sled store and one for PostgreSQL (a private
//! cluster, `tidemark_tests::pg`, a fresh database per test). The engine
//! sees only these traits, so a backend that passes them behaves the same
//! under it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tidemark::executor::Trigger;
use tidemark::run::Run;
use tidemark::store::{
    BackfillWindow, Changes, PgStore, SledStore, StagedOutputs, StateCounts, StateStore, TaskScope,
    WindowState,
};
use tidemark::workflow::{Catalog, PluginRef, RawWorkflow};
use tidemark_tests::pg::PgCluster;

#[path = "store_conformance_records.rs"]
mod records;
#[path = "store_conformance_runs.rs"]
mod runs;

pub(crate) fn open_sled() -> Arc<dyn StateStore> {
    Arc::new(SledStore::temporary().expect("temporary sled store"))
}

pub(crate) fn open_pg() -> Arc<dyn StateStore> {
    let url = PgCluster::fresh_database();
    Arc::new(PgStore::open(&url).unwrap_or_else(|e| panic!("opening {url}: {e}")))
}

/// A sled test and a PostgreSQL test of each scenario.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sled() {
                super::$name(&*super::open_sled());
            }
            #[test]
            fn postgres() {
                super::$name(&*super::open_pg());
            }
        }
    )*};
}
pub(crate) use conformance;

conformance!(
    checkpoints_are_scoped_and_the_last_save_wins,
    a_commit_replaces_only_the_partitions_it_writes,
    scans_order_by_partition_then_key_and_page,
    two_commits_of_one_partition_in_one_change_count_once,
    the_sized_delta_matches_what_a_commit_adds_to_usage,
    backfill_tiles_count_what_a_scan_counts,
    plugin_and_workflow_versions,
);

pub(crate) const H: i64 = 3_600_000;
pub(crate) const T0: i64 = 1_709_251_200_000;

fn scope(window_start: i64) -> TaskScope {
    TaskScope {
        tenant: "t1".into(),
        workflow: "wf".into(),
        task: "extract".into(),
        window_start,
    }
}

pub(crate) fn staged(rows: &[(&str, &str, &str)]) -> StagedOutputs {
    let mut s = StagedOutputs::default();
    for (d, k, v) in rows {
        s.put(d, *k, v.as_bytes().to_vec());
    }
    s
}

fn checkpoints_are_scoped_and_the_last_save_wins(store: &dyn StateStore) {
    store.checkpoint_save(&scope(0), b"one").unwrap();
    store.checkpoint_save(&scope(0), b"two").unwrap();
    store.checkpoint_save(&scope(H), b"other").unwrap();
    assert_eq!(
        store.checkpoint_load(&scope(0)).unwrap(),
        Some(b"two".to_vec())
    );
    let mut other_tenant = scope(0);
    other_tenant.tenant = "t2".into();
    assert_eq!(store.checkpoint_load(&other_tenant).unwrap(), None);
    store.checkpoint_clear(&scope(0)).unwrap();
    assert_eq!(store.checkpoint_load(&scope(0)).unwrap(), None);
    assert_eq!(
        store.checkpoint_load(&scope(H)).unwrap(),
        Some(b"other".to_vec())
    );
}

fn a_commit_replaces_only_the_partitions_it_writes(store: &dyn StateStore) {
    let rows = [("a", "k1", "old"), ("a", "k2", "old"), ("b", "x", "keep")];
    store.dataset_commit("t1", 0, &staged(&rows)).unwrap();
    store
        .dataset_commit("t1", 100, &staged(&[("a", "k1", "next-window")]))
        .unwrap();
    // A re-run of window 0 writes only k1 of dataset a: k2 goes, b stays.
    store
        .dataset_commit("t1", 0, &staged(&[("a", "k1", "new")]))
        .unwrap();
    let get = |d, p, k| store.dataset_get("t1", d, p, k).unwrap();
    assert_eq!(get("a", 0, "k1"), Some(b"new".to_vec()));
    assert_eq!(get("a", 0, "k2"), None);
    assert_eq!(get("b", 0, "x"), Some(b"keep".to_vec()));
    assert_eq!(get("a", 100, "k1"), Some(b"next-window".to_vec()));
    assert_eq!(store.dataset_get("t2", "a", 0, "k1").unwrap(), None);
}

fn scans_order_by_partition_then_key_and_page(store: &dyn StateStore) {
    for p in [-200i64, -100, 0, 100, 200] {
        let rows = [
            ("d", "a1", "v"),
            ("d", "b1", "v"),
            ("d", "b2", "v"),
            ("d", "c", "v"),
        ];
        store.dataset_commit("t1", p, &staged(&rows)).unwrap();
    }
    store
        .dataset_commit("t1", 0, &staged(&[("dx", "b1", "v")]))
        .unwrap();
    let all = store
        .dataset_scan("t1", "d", -100..200, "b", None, 100)
        .unwrap();
    let got: Vec<(i64, &str)> = all.iter().map(|e| (e.partition, e.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (-100, "b1"),
            (-100, "b2"),
            (0, "b1"),
            (0, "b2"),
            (100, "b1"),
            (100, "b2")
        ]
    );
    // Paging resumes strictly after the last entry of each page.
    let mut pages = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = store
            .dataset_scan(
                "t1",
                "d",
                -100..200,
                "b",
                after.as_ref().map(|(p, k)| (*p, k.as_str())),
                4,
            )
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.partition, last.key.clone()));
        pages.push(page.len());
    }
    assert_eq!(pages, [4, 2]);
    assert!(store
        .dataset_scan("t1", "d", 0..0, "", None, 10)
        .unwrap()
        .is_empty());
    // Many partitions: a scan crosses however many it must.
    for p in 1000..1100 {
        store
            .dataset_commit("t1", p, &staged(&[("many", "k", "v")]))
            .unwrap();
    }
    let many = store
        .dataset_scan("t1", "many", 0..i64::MAX, "", None, 1000)
        .unwrap();
    assert_eq!(many.len(), 100);
    assert!(many.windows(2).all(|w| w[0].partition < w[1].partition));
}

fn two_commits_of_one_partition_in_one_change_count_once(store: &dyn StateStore) {
    let mut changes = Changes::default();
    changes.outputs.push((
        "t1".into(),
        0,
        staged(&[("d", "a", "first"), ("d", "b", "x")]),
    ));
    changes
        .outputs
        .push(("t1".into(), 0, staged(&[("d", "c", "second")])));
    store.apply(&changes).unwrap();
    let all = store.dataset_scan("t1", "d", 0..1, "", None, 10).unwrap();
    let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["c"]);
    let mut alone = Changes::default();
    alone
        .outputs
        .push(("t2".into(), 0, staged(&[("d", "c", "second")])));
    store.apply(&alone).unwrap();
    assert_eq!(
        store.dataset_bytes("t1").unwrap(),
        store.dataset_bytes("t2").unwrap()
    );
}

fn the_sized_delta_matches_what_a_commit_adds_to_usage(store: &dyn StateStore) {
    let first = staged(&[("d", "a", "1"), ("d", "bb", "22"), ("e", "k", "v")]);
    let predicted = store.dataset_delta("t1", 0, &first).unwrap();
    let mut changes = Changes::default();
    changes.outputs.push(("t1".into(), 0, first));
    store.apply(&changes).unwrap();
    assert_eq!(store.dataset_bytes("t1").unwrap() as i64, predicted);
    // What the sled store counts (keys and values as written): both
    // backends agree, so a quota means the same on either.
    assert_eq!(predicted, 62);
    // Replacing a partition subtracts the old one.
    let second = staged(&[("d", "a", "longer value")]);
    let predicted = predicted + store.dataset_delta("t1", 0, &second).unwrap();
    let mut changes = Changes::default();
    changes.outputs.push(("t1".into(), 0, second));
    store.apply(&changes).unwrap();
    assert_eq!(store.dataset_bytes("t1").unwrap() as i64, predicted);
}

const MIN: i64 = 60_000;
/// 2010-01-01, not a multiple of any tile width used here.
const B0: i64 = 1_262_304_000_000;
const STATES: [WindowState; 5] = [
    WindowState::Running,
    WindowState::Succeeded,
    WindowState::Failed,
    WindowState::Skipped,
    WindowState::Cancelled,
];

fn bw(backfill: u64, workflow: &str, i: i64, state: WindowState) -> BackfillWindow {
    BackfillWindow {
        backfill,
        workflow: workflow.into(),
        window_start: B0 + i * MIN,
        window_end: B0 + (i + 1) * MIN,
        state,
        run_id: Some(i as u64),
        reason: format!("window {i}"),
    }
}

fn expected_counts(model: &BTreeMap<i64, WindowState>, edges: &[i64]) -> Vec<StateCounts> {
    edges
        .windows(2)
        .map(|e| {
            let mut c = StateCounts::default();
            for s in model.range(e[0]..e[1]).map(|(_, s)| *s) {
                c.add(s);
            }
            c
        })
        .collect()
}

fn backfill_tiles_count_what_a_scan_counts(store: &dyn StateStore) {
    let mut model = BTreeMap::new();
    // A fixed pseudo-random sequence: one apply often changes a window,
    // and always a tile, more than once.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let tile = 1i64 << 22; // 64 minutes rounded up to a power of two.
    let first = B0.div_euclid(tile) * tile;
    let edge_sets: Vec<Vec<i64>> = vec![
        (0..=6).map(|i| first + i * tile).collect(),
        vec![B0 - 1, first + tile, first + 3 * tile, B0 + 600 * MIN],
        (0..=40).map(|i| B0 + i * 13 * MIN).collect(),
        vec![i64::MIN / 2, i64::MAX / 2],
    ];
    for round in 0..12 {
        let mut batch = Vec::new();
        for _ in 0..40 {
            let i = next(if round < 3 { 40 } else { 400 }) as i64;
            let state = STATES[next(5) as usize];
            model.insert(B0 + i * MIN, state);
            batch.push(("t1".to_owned(), bw(7, "wf", i, state)));
        }
        // Another workflow and another backfill never leak into these.
        batch.push(("t1".into(), bw(7, "other", round, WindowState::Failed)));
        batch.push(("t1".into(), bw(8, "wf", round, WindowState::Failed)));
        let changes = Changes {
            backfill_windows: batch,
            ..Changes::default()
        };
        store.apply(&changes).unwrap();
        assert_eq!(
            store.backfill_tile_width("t1", 7, "wf").unwrap(),
            Some(tile)
        );
        for edges in &edge_sets {
            assert_eq!(
                store.backfill_window_counts("t1", 7, "wf", edges).unwrap(),
                expected_counts(&model, edges),
                "round {round}, edges {edges:?}"
            );
        }
    }
    // Paged listing in (workflow, time) order, strictly after the cursor.
    let mut seen = Vec::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let page = store
            .backfill_windows("t1", 7, after.as_ref().map(|(w, t)| (w.as_str(), *t)), 50)
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.workflow.clone(), last.window_start));
        seen.extend(page.into_iter().map(|w| (w.workflow, w.window_start)));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted);
    assert_eq!(seen.iter().filter(|(w, _)| w == "wf").count(), model.len());
}

struct AnyPlugin;

impl Catalog for AnyPlugin {
    fn has_plugin(&self, _: &PluginRef) -> bool {
        true
    }
    fn upstreams(&self, _: &str) -> Option<Vec<String>> {
        None
    }
}

pub(crate) fn raw_workflow(name: &str, param: u32) -> RawWorkflow {
    RawWorkflow::from_toml(&format!(
        r#"
name = "{name}"
[schedule]
cron = "0 * * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "t"
plugin = "p"
params = {{ n = {param} }}
"#
    ))
    .unwrap()
}

pub(crate) fn run(id: u64, tenant: &str, workflow: &str, hour: i64, trigger: Trigger) -> Run {
    let def = raw_workflow(workflow, 1).validate(&AnyPlugin).unwrap();
    let window = tidemark::schedule::Window {
        start: T0 + hour * H,
        end: T0 + (hour + 1) * H,
    };
    Run::new(id, tenant, &def, 1, window, trigger, T0)
}

fn plugin_and_workflow_versions(store: &dyn StateStore) {
    let a = store
        .plugin_put("t", "p", "sha256:a", b"\0asm-a", &[], 1)
        .unwrap();
    let again = store
        .plugin_put("t", "p", "sha256:a", b"\0asm-a", &[], 2)
        .unwrap();
    assert_eq!((a.version, again.version, again.created_ms), (1, 1, 1));
    let b = store
        .plugin_put("t", "p", "sha256:b", b"\0asm-b", &[], 3)
        .unwrap();
    assert_eq!(b.version, 2);
    store
        .plugin_put("t", "q", "sha256:a", b"\0asm-a", &[], 4)
        .unwrap();
    let latest = store
        .plugin_resolve("t", &PluginRef::Latest("p".into()))
        .unwrap();
    assert_eq!(latest.map(|m| m.digest), Some("sha256:b".into()));
    let v1 = store
        .plugin_resolve("t", &PluginRef::Version("p".into(), 1))
        .unwrap();
    assert_eq!(v1.map(|m| m.digest), Some("sha256:a".into()));
    let by_digest = store
        .plugin_resolve("t", &PluginRef::Digest("sha256:b".into()))
        .unwrap();
    assert_eq!(
        by_digest.map(|m| (m.name, m.version)),
        Some(("p".into(), 2))
    );
    assert_eq!(
        store
            .plugin_resolve("u", &PluginRef::Latest("p".into()))
            .unwrap(),
        None
    );
    let listed: Vec<(String, u32)> = store
        .plugin_list("t")
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.version))
        .collect();
    assert_eq!(listed, [("p".into(), 1), ("p".into(), 2), ("q".into(), 1)]);
    // A blob shared with another version stays; the last user takes it.
    assert!(store.plugin_delete("t", "p", 1).unwrap());
    assert!(!store.plugin_delete("t", "p", 1).unwrap());
    assert_eq!(
        store.plugin_blob("t", "sha256:a").unwrap(),
        Some(b"\0asm-a".to_vec())
    );
    assert!(store.plugin_delete("t", "q", 1).unwrap());
    assert_eq!(store.plugin_blob("t", "sha256:a").unwrap(), None);
    assert_eq!(
        store.plugin_blob("t", "sha256:b").unwrap(),
        Some(b"\0asm-b".to_vec())
    );

    let w1 = store.workflow_put("t", &raw_workflow("wf", 1), 10).unwrap();
    let same = store.workflow_put("t", &raw_workflow("wf", 1), 11).unwrap();
    let w2 = store.workflow_put("t", &raw_workflow("wf", 2), 12).unwrap();
    assert_eq!((w1.version, same.version, w2.version), (1, 1, 2));
    store.workflow_put("t", &raw_workflow("aa", 1), 13).unwrap();
    store.workflow_put("u", &raw_workflow("wf", 5), 14).unwrap();
    assert_eq!(
        store
            .workflow_get("t", "wf", None)
            .unwrap()
            .map(|w| w.version),
        Some(2)
    );
    assert_eq!(
        store
            .workflow_get("t", "wf", Some(1))
            .unwrap()
            .map(|w| w.raw),
        Some(raw_workflow("wf", 1))
    );
    let versions: Vec<u32> = store
        .workflow_versions("t", "wf")
        .unwrap()
        .iter()
        .map(|w| w.version)
        .collect();
    assert_eq!(versions, [1, 2]);
    let all: Vec<(String, String, u32)> = store
        .workflows_all()
        .unwrap()
        .into_iter()
        .map(|(t, w)| (t, w.name, w.version))
        .collect();
    assert_eq!(
        all,
        [
            ("t".into(), "aa".into(), 1),
            ("t".into(), "wf".into(), 2),
            ("u".into(), "wf".into(), 1)
        ]
    );
    let cursor = Changes {
        cursors: vec![("t".into(), "wf".into(), T0)],
        ..Changes::default()
    };
    store.apply(&cursor).unwrap();
    store.workflow_delete("t", "wf").unwrap();
    assert_eq!(store.workflow_get("t", "wf", None).unwrap(), None);
    assert_eq!(store.cursor_get("t", "wf").unwrap(), None);
    assert!(store.workflow_get("u", "wf", None).unwrap().is_some());
}
