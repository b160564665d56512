//! The store's contract for tenant-owned records (tenants and tokens,
//! connections, object outputs and staging, backfills) and what survives
//! reopening, on both backends; then what only PostgreSQL has: its errors
//! at open and its bridge from async code.

use std::sync::Arc;

use tidemark::backfill::{BackfillState, Cursor, RawBackfillRequest};
use tidemark::connection::ConnectionKind;
use tidemark::executor::Trigger;
use tidemark::store::{
    BackfillRecord, Changes, ConnectionRecord, DeliveryRecord, DeliveryState, NotifyTargetRecord,
    OutputCheckRecord, OutputRecord, PgStore, SledStore, StagingRecord, StateStore, StoreError,
    TaskScope, TenantRecord, TokenRecord,
};
use tidemark_tests::pg::PgCluster;

use super::{conformance, open_pg, open_sled, run, staged, H, T0};

conformance!(
    tenants_and_tokens,
    connections_swap_on_their_revision,
    notify_targets_and_the_delivery_log,
    outputs_are_published_and_checked_only_by_their_commit,
    backfills_are_listed_and_the_active_ones_found,
    deleting_a_tenant_leaves_nothing_of_it,
);

fn tenant(name: &str) -> TenantRecord {
    TenantRecord {
        name: name.into(),
        created_ms: 0,
        quotas: Default::default(),
        egress: Vec::new(),
    }
}

fn token(tenant: &str, id: u64, hash: &str) -> TokenRecord {
    TokenRecord {
        id,
        tenant: tenant.into(),
        label: format!("token {id}"),
        hash: hash.into(),
        created_ms: 0,
        revoked: false,
    }
}

fn tenants_and_tokens(store: &dyn StateStore) {
    assert!(store
        .tenant_create(&tenant("b"), &token("b", 1, "hb"))
        .unwrap());
    assert!(!store
        .tenant_create(&tenant("b"), &token("b", 2, "hx"))
        .unwrap());
    assert_eq!(store.token_by_hash("hx").unwrap(), None);
    assert!(store
        .tenant_create(&tenant("a"), &token("a", 3, "ha"))
        .unwrap());
    let names: Vec<String> = store
        .tenant_list()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let mut updated = tenant("b");
    updated.egress = vec!["https://api.example.com".into()];
    store.tenant_update(&updated).unwrap();
    assert_eq!(store.tenant_get("b").unwrap(), Some(updated));
    let mut revoked = token("b", 4, "hb2");
    store.token_put(&revoked).unwrap();
    revoked.revoked = true;
    store.token_put(&revoked).unwrap();
    assert_eq!(store.token_by_hash("hb2").unwrap(), Some(revoked));
    let ids: Vec<u64> = store
        .token_list("b")
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [1, 4]);
    let (x, y) = (store.next_id().unwrap(), store.next_id().unwrap());
    assert!(y > x);
}

fn connection(revision: u32, base: &str) -> ConnectionRecord {
    ConnectionRecord {
        name: "api".into(),
        kind: ConnectionKind::Http,
        config: [("base_url".to_owned(), base.to_owned())].into(),
        secrets: Default::default(),
        revision,
        created_ms: 0,
        updated_ms: 0,
    }
}

fn connections_swap_on_their_revision(store: &dyn StateStore) {
    assert!(store
        .connection_create("t", &connection(1, "https://a"))
        .unwrap());
    assert!(!store
        .connection_create("t", &connection(1, "https://b"))
        .unwrap());
    assert!(store
        .connection_update("t", &connection(2, "https://c"))
        .unwrap());
    // A writer that read revision 1 loses.
    assert!(!store
        .connection_update("t", &connection(2, "https://d"))
        .unwrap());
    assert_eq!(
        store.connection_get("t", "api").unwrap(),
        Some(connection(2, "https://c"))
    );
    assert_eq!(store.connection_get("u", "api").unwrap(), None);
    assert_eq!(store.connection_list("t").unwrap().len(), 1);
    assert!(store.connection_delete("t", "api").unwrap());
    assert!(!store.connection_delete("t", "api").unwrap());
    assert!(!store
        .connection_update("t", &connection(3, "https://e"))
        .unwrap());
}

fn output(run_id: u64, attempt: u32) -> OutputRecord {
    OutputRecord {
        connection: "lake".into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
        run_id,
        attempt,
        committed_ms: T0,
        objects: Vec::new(),
        published: false,
        check: Some(OutputCheckRecord::pending()),
    }
}

fn marker(run_id: u64, attempt: u32) -> StagingRecord {
    StagingRecord {
        connection: "lake".into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
        run_id,
        attempt,
        prefix: format!("wf/_attempts/{run_id}-{attempt}/"),
    }
}

fn commit(store: &dyn StateStore, r: OutputRecord) {
    let changes = Changes {
        object_outputs: vec![("t".into(), r)],
        ..Changes::default()
    };
    store.apply(&changes).unwrap();
}

fn outputs_are_published_and_checked_only_by_their_commit(store: &dyn StateStore) {
    store.staging_mark("t", &marker(1, 1)).unwrap();
    store.staging_mark("t", &marker(1, 2)).unwrap();
    assert_eq!(store.staging_all().unwrap().len(), 2);
    commit(store, output(1, 1));
    // The commit owns its objects: its marker went with it.
    let left: Vec<u32> = store
        .staging_all()
        .unwrap()
        .iter()
        .map(|(_, s)| s.attempt)
        .collect();
    assert_eq!(left, [2]);
    store.staging_clear("t", &marker(1, 2)).unwrap();
    assert!(store.staging_all().unwrap().is_empty());
    assert_eq!(store.outputs_pending().unwrap().len(), 1);
    // A newer commit of the window: the older publish marks nothing.
    commit(store, output(2, 1));
    assert!(!store.output_published("t", &output(1, 1)).unwrap());
    assert!(store.output_published("t", &output(2, 1)).unwrap());
    // Published with its check pending: still on the work list.
    assert_eq!(store.outputs_pending().unwrap().len(), 1);
    let mut passed = OutputCheckRecord::pending();
    passed.state = tidemark::store::CheckState::Passed;
    assert!(!store
        .output_checked("t", &output(1, 1), passed.clone())
        .unwrap());
    assert!(store
        .output_checked("t", &output(2, 1), passed.clone())
        .unwrap());
    assert!(store.outputs_pending().unwrap().is_empty());
    let stored = store
        .output_get("t", "lake", "wf", "t", T0)
        .unwrap()
        .unwrap();
    assert!(stored.published);
    assert_eq!(stored.check, Some(passed));
    assert_eq!(store.outputs_of("t", "wf", T0, T0 + H).unwrap(), [stored]);
    assert!(store
        .outputs_of("t", "wf", T0 + 1, T0 + H)
        .unwrap()
        .is_empty());
    assert_eq!(store.output_get("u", "lake", "wf", "t", T0).unwrap(), None);
}

fn backfill(id: u64, state: BackfillState) -> BackfillRecord {
    BackfillRecord {
        id,
        tenant: "t".into(),
        request: serde_json::from_value::<RawBackfillRequest>(
            serde_json::json!({"workflow": "wf", "start": "2024-03-01", "end": "2024-03-02"}),
        )
        .unwrap(),
        version: 1,
        state,
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
        requested_by: tidemark::run::Requester::Token {
            id: 3,
            label: "ops".into(),
        },
    }
}

fn backfills_are_listed_and_the_active_ones_found(store: &dyn StateStore) {
    let changes = Changes {
        backfills: vec![
            backfill(2, BackfillState::Running),
            backfill(1, BackfillState::Running),
        ],
        ..Changes::default()
    };
    store.apply(&changes).unwrap();
    let done = Changes {
        backfills: vec![backfill(1, BackfillState::Succeeded)],
        ..Changes::default()
    };
    store.apply(&done).unwrap();
    let ids: Vec<u64> = store.backfills("t").unwrap().iter().map(|b| b.id).collect();
    assert_eq!(ids, [1, 2]);
    let active: Vec<u64> = store
        .backfills_active()
        .unwrap()
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(active, [2]);
    assert_eq!(
        store.backfill_get("t", 1).unwrap().map(|b| b.state),
        Some(BackfillState::Succeeded)
    );
    assert_eq!(store.backfill_get("u", 1).unwrap(), None);
    // Who asked is kept with the record.
    assert_eq!(
        store.backfill_get("t", 2).unwrap(),
        Some(backfill(2, BackfillState::Running))
    );
}

/// Writes records of every kind for `name`.
fn target(name: &str) -> NotifyTargetRecord {
    NotifyTargetRecord {
        name: name.into(),
        url: "https://hooks.example.com/x".into(),
        connection: "api".into(),
        secret_field: "token".into(),
        events: vec![tidemark::notify::EventType::BackfillEnded],
        created_ms: T0,
    }
}

fn delivery(id: u64, state: DeliveryState) -> DeliveryRecord {
    DeliveryRecord {
        id,
        target: "ops".into(),
        url: "https://hooks.example.com/x".into(),
        event: tidemark::notify::EventType::BackfillEnded,
        body: format!("{{\"id\":\"{id}\"}}"),
        state,
        attempts: 0,
        next_attempt_ms: Some(T0),
        last_status: None,
        last_error: None,
        created_ms: T0,
        updated_ms: T0,
    }
}

fn notify_targets_and_the_delivery_log(store: &dyn StateStore) {
    assert!(store.notify_target_create("t", &target("ops")).unwrap());
    assert!(!store.notify_target_create("t", &target("ops")).unwrap());
    assert!(store.notify_target_create("t", &target("dev")).unwrap());
    let names: Vec<String> = store
        .notify_target_list("t")
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["dev", "ops"]);
    assert_eq!(store.notify_target_get("u", "ops").unwrap(), None);
    assert!(store.notify_target_delete("t", "dev").unwrap());
    assert!(!store.notify_target_delete("t", "dev").unwrap());

    for id in 1..=5 {
        store
            .delivery_put("t", &delivery(id, DeliveryState::Pending))
            .unwrap();
    }
    store
        .delivery_put("u", &delivery(9, DeliveryState::Pending))
        .unwrap();
    // An update replaces: delivered ones leave the pending list.
    let mut done = delivery(2, DeliveryState::Delivered);
    done.attempts = 3;
    done.last_status = Some(200);
    store.delivery_put("t", &done).unwrap();
    assert_eq!(store.delivery_get("t", 2).unwrap(), Some(done));
    assert_eq!(store.delivery_get("u", 2).unwrap(), None);
    let ids = |l: Vec<DeliveryRecord>| l.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(store.delivery_list("t", None, 3).unwrap()), [5, 4, 3]);
    assert_eq!(ids(store.delivery_list("t", Some(3), 10).unwrap()), [2, 1]);
    let mut pending: Vec<(String, u64)> = store
        .deliveries_pending()
        .unwrap()
        .into_iter()
        .map(|(t, d)| (t, d.id))
        .collect();
    pending.sort();
    let want: Vec<(String, u64)> = [("t", 1), ("t", 3), ("t", 4), ("t", 5), ("u", 9)]
        .iter()
        .map(|(t, i)| (t.to_string(), *i))
        .collect();
    assert_eq!(pending, want);
}

fn populate(store: &dyn StateStore, name: &str) {
    assert!(store
        .tenant_create(&tenant(name), &token(name, 1, &format!("h-{name}")))
        .unwrap());
    store
        .plugin_put(name, "p", "sha256:aa", b"\0asm", &[], 0)
        .unwrap();
    store
        .workflow_put(name, &super::raw_workflow("wf", 1), 0)
        .unwrap();
    store.staging_mark(name, &marker(8, 1)).unwrap();
    let mut out = output(7, 1);
    out.task = "other".into();
    let changes = Changes {
        runs: vec![run(7, name, "wf", 0, Trigger::Scheduled)],
        cursors: vec![(name.into(), "wf".into(), T0)],
        outputs: vec![(name.into(), T0, staged(&[("ds", "k", "v")]))],
        object_outputs: vec![(name.into(), out)],
        backfills: vec![BackfillRecord {
            tenant: name.into(),
            ..backfill(9, BackfillState::Running)
        }],
        idempotency: vec![(name.into(), "wf".into(), "key".into(), 7)],
        ..Changes::default()
    };
    store.apply(&changes).unwrap();
    let scope = TaskScope {
        tenant: name.into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
    };
    store.checkpoint_save(&scope, b"progress").unwrap();
    assert!(store
        .connection_create(name, &connection(1, "https://a"))
        .unwrap());
    assert!(store.notify_target_create(name, &target("ops")).unwrap());
    store
        .delivery_put(name, &delivery(1, DeliveryState::Pending))
        .unwrap();
}

fn deleting_a_tenant_leaves_nothing_of_it(store: &dyn StateStore) {
    populate(store, "gone");
    populate(store, "kept");
    assert!(store.tenant_delete("gone").unwrap());
    assert!(!store.tenant_delete("gone").unwrap());
    assert_eq!(store.tenant_get("gone").unwrap(), None);
    assert_eq!(store.token_by_hash("h-gone").unwrap(), None);
    assert!(store.plugin_list("gone").unwrap().is_empty());
    assert_eq!(store.workflow_get("gone", "wf", None).unwrap(), None);
    assert_eq!(store.run_get("gone", 7).unwrap(), None);
    assert_eq!(store.dataset_bytes("gone").unwrap(), 0);
    assert_eq!(store.dataset_get("gone", "ds", T0, "k").unwrap(), None);
    assert!(store.backfills("gone").unwrap().is_empty());
    assert!(store.connection_list("gone").unwrap().is_empty());
    assert!(store.notify_target_list("gone").unwrap().is_empty());
    assert!(store.delivery_list("gone", None, 10).unwrap().is_empty());
    assert!(store
        .deliveries_pending()
        .unwrap()
        .iter()
        .all(|(t, _)| t != "gone"));
    assert_eq!(store.idempotency_get("gone", "wf", "key").unwrap(), None);
    assert_eq!(store.cursor_get("gone", "wf").unwrap(), None);
    let gone_scope = TaskScope {
        tenant: "gone".into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
    };
    assert_eq!(store.checkpoint_load(&gone_scope).unwrap(), None);
    let tenants = |v: Vec<String>| v.iter().all(|t| t == "kept");
    assert!(tenants(
        store
            .staging_all()
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    ));
    assert!(tenants(
        store
            .outputs_pending()
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    ));
    assert!(store
        .runs_active()
        .unwrap()
        .iter()
        .all(|r| r.tenant == "kept"));
    // The other tenant has all of its records, and the name can be reused
    // without inheriting a thing.
    assert_eq!(store.run_get("kept", 7).unwrap().map(|r| r.id), Some(7));
    assert!(store.dataset_bytes("kept").unwrap() > 0);
    assert!(store
        .tenant_create(&tenant("gone"), &token("gone", 2, "h2"))
        .unwrap());
    assert!(store.plugin_list("gone").unwrap().is_empty());
}

/// What a restart sees: everything, from the same place.
fn reopening_keeps_everything(open: &dyn Fn() -> Arc<dyn StateStore>) {
    {
        let store = open();
        populate(&*store, "t1");
    }
    let store = open();
    assert!(store.tenant_get("t1").unwrap().is_some());
    assert_eq!(store.run_get("t1", 7).unwrap().map(|r| r.id), Some(7));
    assert_eq!(
        store.dataset_get("t1", "ds", T0, "k").unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(store.cursor_get("t1", "wf").unwrap(), Some(T0));
    assert_eq!(store.runs_active().unwrap().len(), 1);
}

#[test]
fn reopening_keeps_everything_sled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    reopening_keeps_everything(&move || Arc::new(SledStore::open(&path).unwrap()));
}

#[test]
fn reopening_keeps_everything_postgres() {
    let url = PgCluster::fresh_database();
    reopening_keeps_everything(&move || Arc::new(PgStore::open(&url).unwrap()));
}

#[test]
fn postgres_refuses_a_second_active_run_of_a_window() {
    let store = open_pg();
    let changes = |id| Changes {
        runs: vec![run(id, "t", "wf", 0, Trigger::Scheduled)],
        ..Changes::default()
    };
    store.apply(&changes(1)).unwrap();
    let err = store
        .apply(&changes(2))
        .expect_err("two active runs of one window");
    assert!(
        err.to_string().contains("runs_one_active_per_window"),
        "{err}"
    );
    // Nothing of the refused change was written.
    assert_eq!(store.run_get("t", 2).unwrap(), None);
    assert_eq!(
        store.window_get("t", "wf", T0).unwrap().map(|w| w.run_id),
        Some(1)
    );
}

#[test]
fn postgres_errors_at_open_are_clear_and_never_show_the_password() {
    // Nothing listens on a port we just had the system hand out and let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("postgres://tide:hunter2@127.0.0.1:{port}/db");
    let err = PgStore::open(&url).err().expect("nothing listens there");
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("refused") && text.contains("tide:***@127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("hunter2") && !format!("{err:?}").contains("hunter2"));

    let err = PgStore::open("postgres://tide:hunter2@db:port/x")
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    // A database a newer Tidemark migrated.
    let url = PgCluster::fresh_database();
    drop(PgStore::open(&url).unwrap());
    let db = url.rsplit('/').next().unwrap().to_owned();
    let guard = PgCluster::shared().lock().unwrap();
    let cluster = guard.as_ref().unwrap();
    cluster.psql(
        &db,
        "INSERT INTO refinery_schema_history VALUES (99, 'future', '', '')",
    );
    let err = PgStore::open(&url).err().expect("a newer schema");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("99") && text.contains(&tidemark::store::pg_schema_version().to_string())
    );
}

#[test]
fn postgres_store_calls_work_from_inside_async_code() {
    let store = open_pg();
    // A multi-thread runtime's worker (the daemon) and a current-thread
    // runtime (tests, tools) both block on the store's own runtime.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = store.clone();
    multi.block_on(async move {
        tokio::spawn(async move { s.checkpoint_save(&scope(), b"from a worker") })
            .await
            .unwrap()
            .unwrap();
    });
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = store.clone();
    let loaded = current.block_on(async move { s.checkpoint_load(&scope()) });
    assert_eq!(loaded.unwrap(), Some(b"from a worker".to_vec()));
    // The last handle dropped inside async code shuts its runtime down
    // without panicking.
    current.block_on(async move { drop(store) });
}

fn scope() -> TaskScope {
    TaskScope {
        tenant: "t".into(),
        workflow: "wf".into(),
        task: "t".into(),
        window_start: T0,
    }
}
