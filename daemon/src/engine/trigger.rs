//! Event runs from the HTTP trigger: a run of a workflow at the instant of
//! the request, whose tasks receive the request's payload, made safe to
//! retry by an idempotency key.

use super::{Engine, EngineError};
use crate::executor::Trigger;
use crate::run::{Cause, Provenance, Requester, Run};
use crate::schedule::Window;

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What a trigger did.
#[derive(Debug, Clone)]
pub struct Triggered {
    pub run: Run,
    /// `false` when the idempotency key had already created `run`.
    pub created: bool,
}

/// Why an idempotency key is refused.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        ));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("Idempotency-Key may only contain visible ASCII characters".into());
    }
    Ok(())
}

impl Engine {
    /// Starts an event run of `workflow` now with `payload`. With `key`, the
    /// same key always answers with the run it first created, also after a
    /// restart. Event runs are not windows' runs: they never block or hide a
    /// scheduled or backfill run, and their window is the instant `[t, t]`.
    pub async fn trigger(
        &self,
        tenant: &str,
        workflow: &str,
        payload: Vec<u8>,
        key: Option<&str>,
    ) -> Result<Triggered, EngineError> {
        self.trigger_by(tenant, workflow, payload, key, Requester::Unrecorded)
            .await
    }

    /// [`Engine::trigger`] on behalf of `requested_by`.
    pub async fn trigger_by(
        &self,
        tenant: &str,
        workflow: &str,
        payload: Vec<u8>,
        key: Option<&str>,
        requested_by: Requester,
    ) -> Result<Triggered, EngineError> {
        let head = self
            .workflow(tenant, workflow)
            .ok_or_else(|| EngineError::WorkflowNotFound(workflow.to_owned()))?;
        if let Some(key) = key {
            if let Some(run) = self.idempotent_run(tenant, workflow, key).await? {
                return Ok(Triggered {
                    run,
                    created: false,
                });
            }
        }
        // Each event run gets its own instant (a later millisecond if
        // another one of the workflow took this one): the instant names its
        // dataset partition and checkpoints, which must never be shared.
        let now = {
            let mut st = self.inner.lock();
            let last = st
                .last_event
                .entry((tenant.to_owned(), workflow.to_owned()))
                .or_insert(i64::MIN);
            *last = (*last + 1).max(self.inner.clock.now_ms());
            *last
        };
        let id = self.inner.store.next_run_id()?;
        let mut run = Run::new(
            id,
            tenant,
            &head.def,
            head.version,
            Window {
                start: now,
                end: now,
            },
            Trigger::Event,
            now,
        )
        .with_provenance(Provenance::new(
            Cause::Trigger {
                idempotency_key: key.map(str::to_owned),
            },
            requested_by,
        ));
        run.payload = payload;
        let raced = {
            let mut st = self.inner.lock();
            let key = key.map(|k| (tenant.to_owned(), workflow.to_owned(), k.to_owned()));
            match key {
                // A concurrent request with the same key won the race.
                Some(k) if st.idempotency_pending.contains_key(&k) => {
                    st.idempotency_pending.get(&k).copied()
                }
                k => {
                    if let Some(k) = k {
                        st.idempotency_pending.insert(k.clone(), id);
                        st.idempotency.push((k.0, k.1, k.2, id));
                    }
                    st.runs.insert(id, run.clone());
                    st.dirty.insert(id);
                    None
                }
            }
        };
        self.inner.persist().await?;
        if let Some(other) = raced {
            let run = self
                .run(tenant, other)?
                .ok_or(EngineError::RunNotFound(other))?;
            return Ok(Triggered {
                run,
                created: false,
            });
        }
        tracing::info!(run = id, workflow, "event run triggered");
        self.inner.wake.notify_one();
        Ok(Triggered { run, created: true })
    }

    async fn idempotent_run(
        &self,
        tenant: &str,
        workflow: &str,
        key: &str,
    ) -> Result<Option<Run>, EngineError> {
        let k = (tenant.to_owned(), workflow.to_owned(), key.to_owned());
        let pending = { self.inner.lock().idempotency_pending.get(&k).copied() };
        let id = match pending {
            Some(id) => {
                // Answer only once the first request's run is durable.
                self.inner.persist().await?;
                Some(id)
            }
            None => self.inner.store.idempotency_get(tenant, workflow, key)?,
        };
        match id {
            None => Ok(None),
            Some(id) => Ok(Some(
                self.run(tenant, id)?.ok_or(EngineError::RunNotFound(id))?,
            )),
        }
    }
}
