use super::*;

fn scope(window_start: i64) -> TaskScope {
    TaskScope {
        tenant: "t1".into(),
        workflow: "wf".into(),
        task: "extract".into(),
        window_start,
    }
}

fn staged(rows: &[(&str, &str, &str)]) -> StagedOutputs {
    let mut s = StagedOutputs::default();
    for (d, k, v) in rows {
        s.put(d, *k, v.as_bytes().to_vec());
    }
    s
}

#[test]
fn checkpoints_are_scoped_to_task_and_window_and_last_save_wins() {
    let store = SledStore::temporary().unwrap();
    store.checkpoint_save(&scope(0), b"one").unwrap();
    store.checkpoint_save(&scope(0), b"two").unwrap();
    store.checkpoint_save(&scope(3_600_000), b"other").unwrap();
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
        store.checkpoint_load(&scope(3_600_000)).unwrap(),
        Some(b"other".to_vec())
    );
}

#[test]
fn checkpoints_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.checkpoint_save(&scope(7), b"progress").unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.checkpoint_load(&scope(7)).unwrap(),
        Some(b"progress".to_vec())
    );
}

#[test]
fn commit_replaces_only_the_written_partitions() {
    let store = SledStore::temporary().unwrap();
    store
        .dataset_commit(
            "t1",
            0,
            &staged(&[("a", "k1", "old"), ("a", "k2", "old"), ("b", "x", "keep")]),
        )
        .unwrap();
    store
        .dataset_commit("t1", 100, &staged(&[("a", "k1", "next-window")]))
        .unwrap();
    // Re-run of window 0 writes only k1 of dataset a: k2 must disappear, b stays.
    store
        .dataset_commit("t1", 0, &staged(&[("a", "k1", "new")]))
        .unwrap();
    assert_eq!(
        store.dataset_get("t1", "a", 0, "k1").unwrap(),
        Some(b"new".to_vec())
    );
    assert_eq!(store.dataset_get("t1", "a", 0, "k2").unwrap(), None);
    assert_eq!(
        store.dataset_get("t1", "b", 0, "x").unwrap(),
        Some(b"keep".to_vec())
    );
    assert_eq!(
        store.dataset_get("t1", "a", 100, "k1").unwrap(),
        Some(b"next-window".to_vec())
    );
    assert_eq!(store.dataset_get("t2", "a", 0, "k1").unwrap(), None);
}

#[test]
fn scan_orders_by_partition_then_key_and_filters_prefix_and_range() {
    let store = SledStore::temporary().unwrap();
    for p in [-200i64, -100, 0, 100, 200] {
        store
            .dataset_commit(
                "t1",
                p,
                &staged(&[
                    ("d", "a1", "v"),
                    ("d", "b1", "v"),
                    ("d", "b2", "v"),
                    ("d", "c", "v"),
                ]),
            )
            .unwrap();
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
        vec![
            (-100, "b1"),
            (-100, "b2"),
            (0, "b1"),
            (0, "b2"),
            (100, "b1"),
            (100, "b2")
        ]
    );
    // Paging: resume strictly after the last entry of each page.
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
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        after = Some((last.partition, last.key.clone()));
        pages.push(page.len());
    }
    assert_eq!(pages, vec![4, 2]);
    assert!(store
        .dataset_scan("t1", "d", 0..0, "", None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn values_carry_a_format_version() {
    assert_eq!(keys::encode_value(b"x"), vec![keys::FORMAT_V1, b'x']);
    assert!(matches!(
        keys::decode_value("t", &[9, 1]),
        Err(StoreError::Format { version: 9, .. })
    ));
}

#[test]
fn instant_encoding_preserves_order() {
    let xs = [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX];
    for w in xs.windows(2) {
        assert!(keys::instant(w[0]) < keys::instant(w[1]));
        assert_eq!(keys::decode_instant(&keys::instant(w[0])), Some(w[0]));
    }
}

const MIN: i64 = 60_000;
/// 2010-01-01, not a multiple of any tile width used here.
const T0: i64 = 1_262_304_000_000;

fn bw(backfill: u64, workflow: &str, i: i64, len: i64, state: WindowState) -> BackfillWindow {
    BackfillWindow {
        backfill,
        workflow: workflow.into(),
        window_start: T0 + i * len,
        window_end: T0 + (i + 1) * len,
        state,
        run_id: Some(i as u64),
        reason: format!("window {i}"),
    }
}

fn apply_windows(store: &SledStore, windows: Vec<BackfillWindow>) {
    let changes = Changes {
        backfill_windows: windows.into_iter().map(|w| ("t1".into(), w)).collect(),
        ..Changes::default()
    };
    store.apply(&changes).unwrap();
}

/// What a scan of `model` (window start → last state) gives per bucket.
fn expected_counts(
    model: &std::collections::BTreeMap<i64, WindowState>,
    edges: &[i64],
) -> Vec<StateCounts> {
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

/// Edge sets that exercise every path: whole tiles only, whole tiles with
/// partial ones at both ends, buckets narrower than a tile, one bucket.
fn edge_sets(tile: i64) -> Vec<Vec<i64>> {
    let first = T0.div_euclid(tile) * tile;
    vec![
        (0..=6).map(|i| first + i * tile).collect(),
        vec![T0 - 1, first + tile, first + 3 * tile, T0 + 600 * MIN],
        (0..=40).map(|i| T0 + i * 13 * MIN).collect(),
        vec![i64::MIN / 2, i64::MAX / 2],
    ]
}

const STATES: [WindowState; 5] = [
    WindowState::Running,
    WindowState::Succeeded,
    WindowState::Failed,
    WindowState::Skipped,
    WindowState::Cancelled,
];

#[test]
fn backfill_tiles_count_exactly_what_a_scan_counts() {
    let store = SledStore::temporary().unwrap();
    let mut model = std::collections::BTreeMap::new();
    // A fixed pseudo-random sequence: 30 applies of 40 changes among 400
    // minutely windows (about six tiles), so one apply often changes the
    // same window, and always the same tile, more than once.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..30 {
        let mut batch = Vec::new();
        for _ in 0..40 {
            let i = next(if round < 3 { 40 } else { 400 }) as i64;
            let state = STATES[next(5) as usize];
            model.insert(T0 + i * MIN, state);
            batch.push(bw(7, "wf", i, MIN, state));
        }
        // Another workflow and another backfill never leak into these.
        batch.push(bw(7, "other", round, MIN, WindowState::Failed));
        batch.push(bw(8, "wf", round, MIN, WindowState::Failed));
        apply_windows(&store, batch);
        let tile = store.backfill_tile_width("t1", 7, "wf").unwrap();
        // 64 minutes rounded up to a power of two.
        assert_eq!(tile, Some(1 << 22));
        for edges in edge_sets(1 << 22) {
            assert_eq!(
                store.backfill_window_counts("t1", 7, "wf", &edges).unwrap(),
                expected_counts(&model, &edges),
                "round {round}, edges {edges:?}"
            );
        }
    }
    // Whole-tile buckets come from the tiles alone: without the window
    // records they still count every window.
    for k in store.state.scan_prefix(b"Vt1\0").keys() {
        store.state.remove(k.unwrap()).unwrap();
    }
    let edges = &edge_sets(1 << 22)[0];
    assert_eq!(
        store.backfill_window_counts("t1", 7, "wf", edges).unwrap(),
        expected_counts(&model, edges)
    );
    assert_eq!(
        store
            .backfill_window_counts("t1", 7, "wf", &edge_sets(1 << 22)[2])
            .unwrap()
            .iter()
            .map(StateCounts::total)
            .sum::<u64>(),
        0
    );
}

#[test]
fn backfill_counts_fall_back_to_scanning_windows_written_before_tiles() {
    let store = SledStore::temporary().unwrap();
    let mut model = std::collections::BTreeMap::new();
    let hour = 60 * MIN;
    apply_windows(
        &store,
        (0..200)
            .map(|i| {
                model.insert(T0 + i * hour, WindowState::Running);
                bw(3, "wf", i, hour, WindowState::Running)
            })
            .collect(),
    );
    // What a store written before tiles existed holds: windows only.
    for prefix in [&b"St1\0"[..], b"Zt1\0"] {
        for k in store.state.scan_prefix(prefix).keys() {
            store.state.remove(k.unwrap()).unwrap();
        }
    }
    assert_eq!(store.backfill_tile_width("t1", 3, "wf").unwrap(), None);
    // Later changes, old windows and new, keep the series untiled: tiles
    // of only the newer windows would count too few.
    apply_windows(
        &store,
        (150..260)
            .map(|i| {
                let s = STATES[i as usize % 5];
                model.insert(T0 + i * hour, s);
                bw(3, "wf", i, hour, s)
            })
            .collect(),
    );
    assert_eq!(store.backfill_tile_width("t1", 3, "wf").unwrap(), None);
    let tile = 1 << 28; // 64 hours rounded up to a power of two.
    for edges in [
        (0..=6)
            .map(|i| T0.div_euclid(tile) * tile + i * tile)
            .collect(),
        vec![T0, T0 + 100 * hour, T0 + 260 * hour],
    ] {
        assert_eq!(
            store.backfill_window_counts("t1", 3, "wf", &edges).unwrap(),
            expected_counts(&model, &edges)
        );
    }
    // A new series of the same store is tiled.
    apply_windows(&store, vec![bw(4, "wf", 0, hour, WindowState::Running)]);
    assert_eq!(
        store.backfill_tile_width("t1", 4, "wf").unwrap(),
        Some(tile)
    );
}

#[test]
fn deleting_a_tenant_deletes_its_backfill_tiles() {
    let store = SledStore::temporary().unwrap();
    let tenant = TenantRecord {
        name: "t1".into(),
        created_ms: 0,
        quotas: Default::default(),
        egress: Vec::new(),
    };
    let token = TokenRecord {
        id: 1,
        tenant: "t1".into(),
        label: "first".into(),
        hash: "h".into(),
        created_ms: 0,
        revoked: false,
    };
    assert!(store.tenant_create(&tenant, &token).unwrap());
    apply_windows(&store, vec![bw(1, "wf", 0, MIN, WindowState::Running)]);
    let count = |p: &[u8]| store.state.scan_prefix(p).count();
    assert_eq!((count(b"St1\0"), count(b"Zt1\0")), (1, 1));
    assert!(store.tenant_delete("t1").unwrap());
    assert_eq!(
        (count(b"St1\0"), count(b"Zt1\0"), count(b"Vt1\0")),
        (0, 0, 0)
    );
}

#[test]
fn reopening_waits_for_a_lock_that_is_being_released() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path()).unwrap();
    // The first store goes away while the second open is already waiting.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let second = SledStore::open(dir.path());
    release.join().unwrap();
    assert!(second.is_ok(), "{:?}", second.err());
}

#[test]
fn a_lock_held_for_good_is_still_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path()).err().expect("the lock is held");
    assert!(err.to_string().contains("could not acquire lock"), "{err}");
}

#[test]
fn records_written_before_outbound_http_still_load() {
    // An attempt and a tenant as stored before `http` and `egress` existed.
    let attempt: AttemptRecord = serde_json::from_str(
        r#"{"run_id":1,"task":"t","attempt":1,"started_ms":0,"ended_ms":5,
            "error_kind":null,"message":"ok","fuel":7,"log":[]}"#,
    )
    .unwrap();
    assert!(attempt.http.is_empty());
    let tenant: TenantRecord =
        serde_json::from_str(r#"{"name":"acme","created_ms":0,"quotas":{"weight":2}}"#).unwrap();
    assert!(tenant.egress.is_empty());
    // And new ones without requests are written as before.
    assert!(!serde_json::to_string(&attempt).unwrap().contains("http"));
    assert!(!serde_json::to_string(&tenant).unwrap().contains("egress"));
}

#[test]
fn rows_of_the_former_layout_are_converted_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        // As an older version wrote them: one entry per row.
        for (p, k, v) in [(0, "b", "2"), (0, "a", "1"), (100, "a", "x")] {
            store
                .state
                .insert(
                    keys::dataset_key("t1", "d", p, k),
                    keys::encode_value(v.as_bytes()),
                )
                .unwrap();
        }
        store.db.remove(b"dataset-layout").unwrap();
        store.db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.dataset_get("t1", "d", 0, "b").unwrap(),
        Some(b"2".to_vec())
    );
    let all = store.dataset_scan("t1", "d", 0..101, "", None, 10).unwrap();
    let seen: Vec<(i64, &str)> = all.iter().map(|e| (e.partition, e.key.as_str())).collect();
    assert_eq!(seen, [(0, "a"), (0, "b"), (100, "a")]);
    let rows = store.state.scan_prefix([keys::DATASET]).count();
    assert_eq!(rows, 2, "one value per partition is left");
}

#[test]
fn two_commits_of_one_partition_in_one_batch_keep_the_later_and_count_it_once() {
    let store = SledStore::temporary().unwrap();
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

#[test]
fn the_sized_delta_matches_what_a_commit_adds_to_usage() {
    let store = SledStore::temporary().unwrap();
    let first = staged(&[("d", "a", "1"), ("d", "bb", "22"), ("e", "k", "v")]);
    let predicted = store.dataset_delta("t1", 0, &first).unwrap();
    let mut changes = Changes::default();
    changes.outputs.push(("t1".into(), 0, first));
    store.apply(&changes).unwrap();
    assert_eq!(store.dataset_bytes("t1").unwrap() as i64, predicted);
    // Replacing a partition subtracts the old one.
    let second = staged(&[("d", "a", "longer value")]);
    let predicted = predicted + store.dataset_delta("t1", 0, &second).unwrap();
    let mut changes = Changes::default();
    changes.outputs.push(("t1".into(), 0, second));
    store.apply(&changes).unwrap();
    assert_eq!(store.dataset_bytes("t1").unwrap() as i64, predicted);
}
