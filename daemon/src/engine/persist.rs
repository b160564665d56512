//! Making engine state durable: the changes made in memory since the last
//! persist, drained into one atomic store change, kept for the next try if
//! the store refuses it; and the one way a run ends.

use super::*;

impl EngineState {
    /// Takes every change made in memory since the last persist.
    pub(super) fn drain_changes(&mut self, metrics: &crate::metrics::Metrics) -> Changes {
        let mut runs: Vec<Run> = std::mem::take(&mut self.ended);
        for r in &runs {
            self.cancel_flags.remove(&r.id);
            let labels =
                crate::metrics::labels(&[("tenant", &r.tenant), ("state", r.state.as_str())]);
            metrics.runs_ended.get_or_create(&labels).inc();
        }
        let dirty: Vec<u64> = self.dirty.drain().collect();
        runs.extend(dirty.iter().filter_map(|id| self.runs.get(id).cloned()));
        let mut backfills: Vec<crate::store::BackfillRecord> =
            std::mem::take(&mut self.ended_backfills);
        let dirty_b: Vec<u64> = self.dirty_backfills.drain().collect();
        backfills.extend(
            dirty_b
                .iter()
                .filter_map(|id| self.backfills.get(id).map(|b| b.record.clone())),
        );
        let mut changes = Changes {
            runs,
            cursors: std::mem::take(&mut self.cursor_changes),
            attempts: std::mem::take(&mut self.attempts),
            outputs: std::mem::take(&mut self.outputs),
            object_outputs: std::mem::take(&mut self.object_outputs),
            backfills,
            backfill_windows: std::mem::take(&mut self.backfill_windows),
            idempotency: std::mem::take(&mut self.idempotency),
        };
        let gone = &self.forgotten;
        if !gone.is_empty() {
            changes.backfills.retain(|b| !gone.contains(&b.tenant));
            changes.backfill_windows.retain(|w| !gone.contains(&w.0));
            changes.runs.retain(|r| !gone.contains(&r.tenant));
            changes.cursors.retain(|c| !gone.contains(&c.0));
            changes.attempts.retain(|a| !gone.contains(&a.0));
            changes.outputs.retain(|o| !gone.contains(&o.0));
            changes.object_outputs.retain(|o| !gone.contains(&o.0));
            changes.idempotency.retain(|i| !gone.contains(&i.0));
        }
        changes
    }

    /// The one end of a run: out of the active runs, its backfill window
    /// and statistics updated, queued for its final persist.
    pub(super) fn end_run(&mut self, id: u64, now: i64) -> Option<&Run> {
        let run = self.runs.remove(&id)?;
        self.dirty.remove(&id);
        tracing::info!(
            run = id,
            workflow = run.workflow,
            state = run.state.as_str(),
            "run ended"
        );
        backfills::run_ended(self, &run, now);
        notify::run_ended(self, &run);
        self.ended.push(run);
        self.ended.last()
    }

    /// The run (not an event run) of a window that exists in memory: active,
    /// or ended but not yet durable. The store's window index does not show
    /// either yet.
    pub(super) fn window_run(&self, tenant: &str, workflow: &str, start: i64) -> Option<&Run> {
        let matches = |r: &&Run| {
            r.tenant == tenant
                && r.workflow == workflow
                && r.window_start == start
                && r.trigger != crate::executor::Trigger::Event
        };
        self.runs
            .values()
            .find(matches)
            .or_else(|| self.ended.iter().rev().find(matches))
    }
}

impl Inner {
    /// Makes every in-memory change made before this call durable.
    ///
    /// If the store refuses the write, the changes are kept (not dropped)
    /// and the next persist writes them first; until one succeeds, nothing
    /// acts on them: held attempts do not start and callers get the error.
    pub(super) async fn persist(&self) -> Result<(), EngineError> {
        // Group commit: any drain that begins after this point takes the
        // caller's changes with it. Callers queue here while one write is
        // in flight; the first of them writes what all of them changed,
        // and the others find it durable and return, rather than each
        // paying a write (and a flush) of its own.
        let want = self.drains_begun.load(Ordering::SeqCst) + 1;
        let _order = self.persist_lock.lock().await;
        if self.drains_durable.load(Ordering::SeqCst) >= want {
            return Ok(());
        }
        let (changes, drain, notices) = {
            let mut st = self.lock();
            let notices = std::mem::take(&mut st.notices);
            let drain = self.drains_begun.fetch_add(1, Ordering::SeqCst) + 1;
            let fresh = st.drain_changes(&self.metrics);
            let changes = match st.unpersisted.take() {
                Some(mut older) => {
                    older.merge(fresh);
                    older
                }
                None => fresh,
            };
            (changes, drain, notices)
        };
        if changes.is_empty() {
            self.drains_durable.store(drain, Ordering::SeqCst);
            self.send_notices(notices);
            return Ok(());
        }
        let store = self.store.clone();
        let (changes, result) = tokio::task::spawn_blocking(move || {
            let r = store.apply(&changes);
            (changes, r)
        })
        .await?;
        let mut st = self.lock();
        match result {
            Ok(()) => {
                self.drains_durable.store(drain, Ordering::SeqCst);
                let ended = changes
                    .runs
                    .iter()
                    .filter(|r| r.state.is_terminal())
                    .map(|r| r.id);
                st.checks_due(ended);
                // Durable now: the store answers for these keys.
                for (t, w, k, _) in &changes.idempotency {
                    st.idempotency_pending
                        .remove(&(t.clone(), w.clone(), k.clone()));
                }
                if st.store_failure.take().is_some() {
                    tracing::info!("the store accepts writes again");
                }
                drop(st);
                // Durable now: what they tell cannot be taken back.
                self.send_notices(notices);
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                if st.store_failure.is_none() {
                    tracing::error!("the store refused a write; retrying: {message}");
                }
                let since_ms = st
                    .store_failure
                    .as_ref()
                    .map_or_else(|| self.clock.now_ms(), |f| f.since_ms);
                st.store_failure = Some(StoreFailure { since_ms, message });
                st.unpersisted = Some(changes);
                // Told with the write that carries their changes.
                st.notices.splice(0..0, notices);
                Err(e.into())
            }
        }
    }
}
