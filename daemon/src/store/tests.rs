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
        s.put(d, k, v.as_bytes().to_vec());
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
