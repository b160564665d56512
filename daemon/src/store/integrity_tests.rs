//! Regression tests of the store's integrity guarantees: tenant deletion
//! removes every key kind (and finishes after a crash), and version numbers
//! are allocated atomically.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Barrier};

use super::keys::{self, KeyKind};
use super::*;
use crate::backfill::{Cursor, RawBackfillRequest};
use crate::executor::Trigger;
use crate::run::Run;
use crate::workflow::{Catalog, PluginRef, RawWorkflow};

struct AnyPlugin;

impl Catalog for AnyPlugin {
    fn has_plugin(&self, _: &PluginRef) -> bool {
        true
    }
    fn upstreams(&self, _: &str) -> Option<Vec<String>> {
        None
    }
}

const H: i64 = 3_600_000;
const T0: i64 = 1_709_251_200_000;

fn raw_workflow(param: u32) -> RawWorkflow {
    RawWorkflow::from_toml(&format!(
        r#"
name = "wf"
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

/// Writes at least one record of every key kind for `tenant`.
fn populate(store: &SledStore, tenant: &str) {
    let token = TokenRecord {
        id: 1,
        tenant: tenant.into(),
        label: "first".into(),
        hash: format!("hash-{tenant}"),
        created_ms: 0,
        revoked: false,
    };
    let record = TenantRecord {
        name: tenant.into(),
        created_ms: 0,
        quotas: Default::default(),
        egress: Vec::new(),
    };
    assert!(store.tenant_create(&record, &token).unwrap());
    store
        .plugin_put(tenant, "p", "sha256:aa", b"\0asm", &[], 0)
        .unwrap();
    let raw = raw_workflow(1);
    store.workflow_put(tenant, &raw, 0).unwrap();
    let def = raw.validate(&AnyPlugin).unwrap();
    let window = crate::schedule::Window {
        start: T0,
        end: T0 + H,
    };
    let run = Run::new(7, tenant, &def, 1, window, Trigger::Scheduled, T0);
    // An attempt staging objects (a marker), beside a committed output.
    let marker = crate::store::StagingRecord {
        connection: "lake".into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
        run_id: 8,
        attempt: 1,
        prefix: "wf/t/x/".into(),
    };
    crate::store::OutputStore::staging_mark(store, tenant, &marker).unwrap();
    // A notification target and one delivery of the log.
    let target = crate::store::NotifyTargetRecord {
        name: "ops".into(),
        url: "https://hooks.example.com/".into(),
        connection: "hooks".into(),
        secret_field: "token".into(),
        events: vec![crate::notify::EventType::RunFailed],
        created_ms: 0,
    };
    use crate::store::NotifyStore as _;
    assert!(store.notify_target_create(tenant, &target).unwrap());
    let delivery = crate::store::DeliveryRecord {
        id: 1,
        target: "ops".into(),
        url: target.url.clone(),
        event: crate::notify::EventType::RunFailed,
        body: "{}".into(),
        state: crate::store::DeliveryState::Pending,
        attempts: 0,
        next_attempt_ms: Some(0),
        last_status: None,
        last_error: None,
        created_ms: 0,
        updated_ms: 0,
    };
    store.delivery_put(tenant, &delivery).unwrap();
    let mut outputs = StagedOutputs::default();
    outputs.put("ds", "k", b"v".to_vec());
    let backfill = BackfillRecord {
        id: 9,
        tenant: tenant.into(),
        request: serde_json::from_value::<RawBackfillRequest>(
            serde_json::json!({"workflow": "wf", "start": "2024-03-01", "end": "2024-03-02"}),
        )
        .unwrap(),
        version: 1,
        state: BackfillState::Running,
        cursor: Cursor::Done,
        running: 0,
        succeeded: 0,
        failed: 0,
        skipped: 0,
        cancelled: 0,
        created_ms: 0,
        updated_ms: 0,
        ended_ms: None,
        throttled: None,
        stage: 0,
        stages: Vec::new(),
        estimated_total: None,
        estimate: None,
        actual: Default::default(),
        pause_reason: None,
        budget_lifted: false,
        repair: None,
        requested_by: Default::default(),
    };
    let changes = Changes {
        runs: vec![run],
        cursors: vec![(tenant.into(), "wf".into(), T0)],
        attempts: vec![(
            tenant.into(),
            AttemptRecord {
                run_id: 7,
                task: "t".into(),
                attempt: 1,
                started_ms: 0,
                ended_ms: 0,
                error_kind: None,
                message: String::new(),
                fuel: None,
                log: Vec::new(),
                http: Vec::new(),
                plugin: None,
                bytes_written: None,
                plugin_digest: None,
                reads: Vec::new(),
                reads_omitted: 0,
            },
        )],
        outputs: vec![(tenant.into(), T0, outputs)],
        object_outputs: vec![(tenant.into(), object_output())],
        backfills: vec![backfill],
        backfill_windows: vec![(
            tenant.into(),
            BackfillWindow {
                backfill: 9,
                workflow: "wf".into(),
                window_start: T0,
                window_end: T0 + H,
                state: WindowState::Running,
                run_id: Some(7),
                reason: String::new(),
            },
        )],
        idempotency: vec![(tenant.into(), "wf".into(), "key".into(), 7)],
    };
    store.apply(&changes).unwrap();
    let scope = TaskScope {
        tenant: tenant.into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
    };
    store.checkpoint_save(&scope, b"progress").unwrap();
    let connection = ConnectionRecord {
        name: "api".into(),
        kind: crate::connection::ConnectionKind::Http,
        config: Default::default(),
        secrets: Default::default(),
        revision: 1,
        created_ms: 0,
        updated_ms: 0,
    };
    assert!(store.connection_create(tenant, &connection).unwrap());
}

/// The first bytes of every key in the `state` tree, and whether any key
/// of any tree still belongs to `tenant`.
fn survey(store: &SledStore, tenant: &str) -> (BTreeSet<u8>, Vec<String>) {
    let mut kinds = BTreeSet::new();
    let mut left = Vec::new();
    let mine = |k: &[u8]| {
        k.len() > tenant.len() + 1 && &k[1..tenant.len() + 2] == format!("{tenant}\0").as_bytes()
    };
    for item in store.state.iter() {
        let (k, _) = item.unwrap();
        kinds.insert(k[0]);
        if mine(&k) {
            left.push(format!("state {:?}", String::from_utf8_lossy(&k)));
        }
    }
    for item in store.blobs.iter() {
        let (k, _) = item.unwrap();
        kinds.insert(k[0]);
        if mine(&k) {
            left.push(format!("blobs {:?}", String::from_utf8_lossy(&k)));
        }
    }
    let cp_prefix = format!("{tenant}\0");
    for item in store.checkpoints.scan_prefix(cp_prefix.as_bytes()) {
        let (k, _) = item.unwrap();
        left.push(format!("checkpoint {:?}", String::from_utf8_lossy(&k)));
    }
    (kinds, left)
}

#[test]
fn tenant_deletion_removes_every_key_kind() {
    let store = SledStore::temporary().unwrap();
    populate(&store, "gone");
    populate(&store, "kept");
    let (kinds, _) = survey(&store, "gone");
    // Every key kind written has an entry in the one enum of kinds: a new
    // kind added without one fails here, before it can survive a deletion.
    let known: BTreeSet<u8> = KeyKind::ALL.iter().map(|k| k.byte()).collect();
    let unknown: Vec<char> = kinds.difference(&known).map(|b| *b as char).collect();
    assert!(
        unknown.is_empty(),
        "key kinds not in KeyKind::ALL: {unknown:?}"
    );
    // And the population exercises every tenant-scoped kind.
    for k in KeyKind::TENANT_SCOPED {
        assert!(kinds.contains(&k.byte()), "populate() writes no {k:?} key");
    }

    assert!(store.tenant_delete("gone").unwrap());
    let (_, left) = survey(&store, "gone");
    assert!(left.is_empty(), "records left after deletion: {left:?}");
    assert!(store.token_by_hash("hash-gone").unwrap().is_none());
    // The other tenant is untouched.
    let (_, kept) = survey(&store, "kept");
    assert!(kept.len() > KeyKind::TENANT_SCOPED.len(), "{kept:?}");
    assert!(store.token_by_hash("hash-kept").unwrap().is_some());
    assert!(!store.tenant_delete("gone").unwrap());
}

#[test]
fn tenant_deletion_interrupted_by_a_crash_finishes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        populate(&store, "gone");
        // The first, atomic step of a deletion, then a "crash".
        store
            .state
            .insert(
                keys::tenant_prefix(keys::TENANT_TOMBSTONE, "gone"),
                keys::encode_value(&[]),
            )
            .unwrap();
        store
            .state
            .remove(keys::tenant_prefix(keys::TENANT, "gone"))
            .unwrap();
        store.db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let (_, left) = survey(&store, "gone");
    assert!(left.is_empty(), "records left after recovery: {left:?}");
    // A tenant of the same name starts empty.
    populate(&store, "gone");
}

#[test]
fn concurrent_version_pushes_get_distinct_versions() {
    let store = Arc::new(SledStore::temporary().unwrap());
    const PUSHES: usize = 18;
    let barrier = Arc::new(Barrier::new(PUSHES));
    let handles: Vec<_> = (0..PUSHES)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let digest = format!("sha256:{}", i % 3);
                let p = store
                    .plugin_put("t", "p", &digest, b"\0asm", &[], 0)
                    .unwrap();
                let w = store
                    .workflow_put("t", &raw_workflow((i % 3) as u32), 0)
                    .unwrap();
                (p.version, p.digest, w.version, w.raw)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let stored_plugins: HashMap<u32, String> = store
        .plugin_list("t")
        .unwrap()
        .into_iter()
        .map(|m| (m.version, m.digest))
        .collect();
    let stored_workflows: HashMap<u32, RawWorkflow> = store
        .workflow_versions("t", "wf")
        .unwrap()
        .into_iter()
        .map(|w| (w.version, w.raw))
        .collect();
    for (pv, digest, wv, raw) in &results {
        // What a push was told is what is stored under that number.
        assert_eq!(stored_plugins.get(pv), Some(digest), "plugin v{pv}");
        assert_eq!(stored_workflows.get(wv), Some(raw), "workflow v{wv}");
    }
    // Versions are dense: no number was lost or handed out twice.
    let mut versions: Vec<u32> = stored_plugins.keys().copied().collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=versions.len() as u32).collect::<Vec<_>>());
}

fn object_output() -> crate::store::OutputRecord {
    crate::store::OutputRecord {
        connection: "lake".into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
        run_id: 7,
        attempt: 1,
        committed_ms: T0,
        objects: Vec::new(),
        published: false,
        check: Some(crate::store::OutputCheckRecord::pending()),
    }
}
