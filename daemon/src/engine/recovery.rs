//! Opening an engine on a store: definitions and unfinished runs are loaded,
//! attempts the last process left running become pending again, and active
//! backfills resume from their durable cursors.

use std::sync::Arc;

use super::*;

impl Engine {
    /// Loads workflows and unfinished runs from the store. Attempts that were
    /// running when the daemon stopped become pending again: they are retried
    /// (their checkpoints intact) without counting against retry policies.
    pub async fn open(
        store: Arc<dyn StateStore>,
        executor: Arc<Executor>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let sealing_key = match &config.sealing_key {
            Some(k) => k.clone(),
            None => crate::secrets::SealingKey::random()
                .map_err(|e| EngineError::Connection(connections::ConnectionOpError::Secrets(e)))?,
        };
        let metrics = crate::metrics::Metrics::default();
        let notifier = deliver::Notifier::start(
            &store,
            clock.clone(),
            sealing_key.clone(),
            config.delivery.clone(),
            &metrics,
        );
        let inner = Arc::new(Inner {
            notifier,
            sealing_key,
            slots: Arc::new(Semaphore::new(config.max_concurrent_attempts.max(1))),
            store,
            executor,
            clock,
            config,
            state: Mutex::new(EngineState::default()),
            persist_lock: tokio::sync::Mutex::new(()),
            drains_begun: Default::default(),
            drains_durable: Default::default(),
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
            quotas: Mutex::default(),
            egress: Mutex::default(),
            triggers: Default::default(),
            dataset_pending: Mutex::default(),
            metrics,
            containers: Default::default(),
            gap_scan: Default::default(),
        });
        let mut heads = HashMap::new();
        for (tenant, wf) in inner.store.workflows_all()? {
            match inner.load_version(&tenant, &wf.name, wf.version) {
                Ok(def) => {
                    heads.insert(
                        (tenant, wf.name.clone()),
                        Loaded {
                            version: wf.version,
                            def,
                        },
                    );
                }
                Err(e) => tracing::error!(tenant, workflow = wf.name, "not scheduling: {e}"),
            }
        }
        let runs = inner.store.runs_active()?;
        {
            let mut st = inner.lock();
            st.heads = heads;
            for mut run in runs {
                let mut interrupted = false;
                for t in &mut run.tasks {
                    if t.state == TaskState::Running {
                        t.apply(TaskEvent::Interrupt)
                            .map_err(|e| StoreError::Corrupt {
                                op: "recovering runs",
                                detail: e.to_string(),
                            })?;
                        t.last_error =
                            Some("interrupted: the daemon stopped during the attempt".into());
                        interrupted = true;
                    }
                }
                if interrupted {
                    tracing::info!(
                        run = run.id,
                        workflow = run.workflow,
                        "resuming interrupted run"
                    );
                    st.dirty.insert(run.id);
                }
                let key = (run.tenant.clone(), run.workflow.clone(), run.version);
                if inner.def_for(&st, &run).is_none() {
                    match inner.load_version(&key.0, &key.1, key.2) {
                        Ok(def) => {
                            st.versions.insert(key, def);
                        }
                        Err(e) => {
                            tracing::error!(run = run.id, "cannot load its workflow version: {e}")
                        }
                    }
                }
                st.runs.insert(run.id, run);
            }
        }
        for record in inner.store.backfills_active()? {
            let def = match inner.load_version(
                &record.tenant,
                &record.request.workflow,
                record.version,
            ) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(backfill = record.id, "cannot resume: {e}");
                    continue;
                }
            };
            let spec = match record.request.validate(&def) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(backfill = record.id, "cannot resume: {e}");
                    continue;
                }
            };
            let st = inner.lock();
            let in_flight = st
                .runs
                .values()
                .filter(|r| r.backfill == Some(record.id))
                .count();
            drop(st);
            let id = record.id;
            let tenant = record.tenant.clone();
            let stage_wf = match record
                .stage
                .checked_sub(1)
                .and_then(|i| record.stages.get(i))
            {
                Some(stage) => stage.workflow.clone(),
                None => record.request.workflow.clone(),
            };
            let succeeded = inner.stage_succeeded(&tenant, id, &stage_wf)?;
            let active = match backfills::ActiveBackfill::new(
                record,
                spec,
                def,
                |wf, v| inner.load_version(&tenant, wf, v),
                in_flight,
                succeeded,
            ) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(backfill = id, "cannot resume: {e}");
                    continue;
                }
            };
            tracing::info!(backfill = id, in_flight, "resuming backfill");
            inner.lock().backfills.insert(id, active);
        }
        inner.persist().await?;
        // Read now, before any attempt of this process stages anything.
        let pending = inner.store.outputs_pending()?;
        let markers = inner.store.staging_all()?;
        {
            // Checks of resumed runs wait for those runs to end.
            let mut st = inner.lock();
            for (tenant, r) in &pending {
                if st.runs.contains_key(&r.run_id) {
                    st.await_checks(r.run_id, &[(tenant.clone(), r.clone())]);
                }
            }
        }
        if !pending.is_empty() || !markers.is_empty() {
            let objects = inner.clone();
            tokio::spawn(async move { objects.recover_objects(pending, markers).await });
        }
        Ok(Engine { inner })
    }
}
