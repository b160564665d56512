//! The engine: turns definitions and time into runs, runs into attempts, and
//! attempt outcomes into durable state.
//!
//! All state lives in memory for speed and in the store for truth. Every
//! mutation marks its run dirty; [`Inner::persist`] drains the dirty runs
//! (plus staged attempt records and dataset outputs) into one atomic store
//! change under a lock, so a later persist always carries a later state, and
//! whoever mutated waits for a persist before acting. That is how "durable
//! before acted on" holds with many attempts in flight, and it batches
//! concurrent completions into one flush.

mod attempt;
mod backfills;
mod checks;
mod connections;
mod deliver;
mod driver;
mod egress;
mod estimates;
mod gaps;
mod handover;
mod materialize;
mod notify;
mod objects;
pub use checks::BackfillVerification;
mod observe;
mod persist;
mod plan;
mod provenance;
mod quotas;
mod recovery;
mod runs;
mod strip;
mod trigger;
mod upstream;
mod workflows;

pub use trigger::{check_idempotency_key, Triggered, MAX_IDEMPOTENCY_KEY};
pub use workflows::WorkflowSummary;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, Semaphore};

use crate::clock::Clock;
use crate::executor::{Executor, Limits, PluginError};
use crate::run::{Run, TaskEvent, TaskState};
use crate::store::{
    AttemptRecord, Changes, PluginMeta, StagedOutputs, StateStore, StoreError, StoredWorkflow,
};
use crate::workflow::{check_name, Catalog, DefinitionError, PluginRef, RawWorkflow, WorkflowDef};

pub use backfills::BackfillAction;
pub use connections::ConnectionOpError;
pub use deliver::DeliveryConfig;
pub use driver::TickReport;
pub use notify::{NotifyOpError, MAX_DELIVERY_PAGE};
pub use plan::{CascadeAddition, Plan, PlanEntry};
pub use provenance::{TaskOrigin, Why};
pub use strip::{Bucket, Strip, MAX_BUCKETS};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Attempts running at once, across all workflows.
    pub max_concurrent_attempts: usize,
    /// Limits of an attempt unless its task overrides them.
    pub limits: Limits,
    /// Live runs created per workflow per tick (catch-up is spread over ticks).
    pub max_new_runs_per_tick: usize,
    /// Tenant of every record until tenancy lands.
    pub tenant: String,
    /// Overload protection: while this many runs are active, backfills
    /// start no new windows (live runs are never held back by it).
    pub backfill_admission_limit: usize,
    /// Quotas of every tenant, unless its record overrides some.
    pub quotas: crate::quota::Quotas,
    /// How long the store may refuse writes before [`Engine::run_until`]
    /// gives up (a sled store that hit an I/O error keeps failing until it
    /// is reopened, so the daemon stops and a restart recovers from it).
    pub store_failure_limit: std::time::Duration,
    /// Seals connection secrets; a random one (secrets that do not outlive
    /// the engine) if none is given.
    pub sealing_key: Option<crate::secrets::SealingKey>,
    /// Where `fs` connections keep their objects (a directory per tenant);
    /// `None` refuses them.
    pub objects_dir: Option<std::path::PathBuf>,
    /// How often the gap detector looks at the workflows that opted into
    /// repairs.
    pub gap_scan_interval: std::time::Duration,
    /// On a cluster node: how long this engine's term may still act. No
    /// attempt starts once it ended.
    pub tenure: Option<Arc<crate::cluster::tenure::Tenure>>,
    /// How notifications are delivered (queue, attempts, backoff).
    pub delivery: DeliveryConfig,
    /// A running backfill whose ended windows do not grow for this long is
    /// reported `backfill.stuck` (once, until it moves again).
    pub stuck_after: std::time::Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_attempts: 8,
            limits: Limits::default(),
            max_new_runs_per_tick: 1000,
            tenant: "default".into(),
            backfill_admission_limit: 10_000,
            quotas: crate::quota::Quotas::default(),
            store_failure_limit: std::time::Duration::from_secs(30),
            sealing_key: None,
            objects_dir: None,
            gap_scan_interval: std::time::Duration::from_secs(60),
            tenure: None,
            delivery: DeliveryConfig::default(),
            stuck_after: std::time::Duration::from_secs(3600),
        }
    }
}

/// Why an engine operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("invalid workflow: {0}")]
    Definition(#[from] DefinitionError),
    #[error("invalid plugin: {0}")]
    Plugin(#[from] PluginError),
    #[error("workflow {0:?} not found")]
    WorkflowNotFound(String),
    #[error("run {0} not found")]
    RunNotFound(u64),
    #[error("workflow {workflow:?} has no window containing {at}")]
    NoWindow { workflow: String, at: i64 },
    #[error("window {start} of workflow {workflow:?} already has an active run ({run_id})")]
    WindowBusy {
        workflow: String,
        start: i64,
        run_id: u64,
    },
    #[error("run {run_id} is {state}; only failed or cancelled runs can be retried")]
    NotRetryable { run_id: u64, state: &'static str },
    #[error(transparent)]
    Transition(#[from] crate::run::InvalidTransition),
    #[error("run {run_id} already ended ({state})")]
    AlreadyEnded { run_id: u64, state: &'static str },
    #[error("invalid backfill: {0}")]
    Backfill(#[from] crate::backfill::RequestError),
    #[error("backfill {0} not found")]
    BackfillNotFound(u64),
    #[error("backfill {id} already ended ({state})")]
    BackfillEnded { id: u64, state: String },
    #[error("backfill {id} is still running; retry-failed applies to ended backfills")]
    BackfillActive { id: u64 },
    #[error(transparent)]
    Quota(#[from] crate::quota::QuotaError),
    #[error("tenant {0:?} not found")]
    TenantNotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("object storage: {0}")]
    Blob(#[from] crate::blob::BlobError),
    #[error("plugin {0} not found")]
    PluginNotFound(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Connection(#[from] connections::ConnectionOpError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyOpError),
    #[error("runs {id} and {other} cannot be compared: {why}")]
    NotComparable { id: u64, other: u64, why: String },
    #[error("invalid gap scan: {0}")]
    GapRange(String),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the store has refused writes since {since}: {message}; stopping so that a restart recovers from the store")]
    StoreFailed { since: String, message: String },
}

/// A loaded workflow version.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub version: u32,
    pub def: Arc<WorkflowDef>,
}

#[derive(Default)]
struct EngineState {
    /// Newest version of each workflow, by `(tenant, name)`.
    heads: HashMap<(String, String), Loaded>,
    /// Older versions that active runs still use.
    versions: HashMap<(String, String, u32), Arc<WorkflowDef>>,
    cursors: HashMap<(String, String), Option<i64>>,
    /// Runs that have not ended.
    runs: BTreeMap<u64, Run>,
    /// Runs changed in memory since the last persist.
    dirty: HashSet<u64>,
    /// Ended runs waiting for their final persist.
    ended: Vec<Run>,
    attempts: Vec<(String, AttemptRecord)>,
    outputs: Vec<(String, i64, StagedOutputs)>,
    object_outputs: Vec<(String, crate::store::OutputRecord)>,
    /// Outputs committed with a pending check, by run, until it ends.
    check_waiting: HashMap<u64, Vec<(String, crate::store::OutputRecord)>>,
    /// Outputs whose runs ended durably: to check now.
    checks_ready: Vec<(String, crate::store::OutputRecord)>,
    cursor_changes: Vec<(String, String, i64)>,
    /// Deleted tenants: late results of their attempts are dropped.
    forgotten: HashSet<String>,
    backfills: BTreeMap<u64, backfills::ActiveBackfill>,
    dirty_backfills: HashSet<u64>,
    ended_backfills: Vec<crate::store::BackfillRecord>,
    backfill_windows: Vec<(String, crate::store::BackfillWindow)>,
    /// Attempts of backfill runs in flight (their pool is capped).
    backfill_attempts: usize,
    /// Interrupt flags of runs with attempts in flight, shared with those
    /// attempts.
    cancel_flags: HashMap<u64, crate::executor::CancelFlag>,
    /// Attempts in flight per tenant.
    tenant_load: HashMap<String, quotas::TenantLoad>,
    /// Fair share (stride scheduling): each tenant's pass grows by
    /// `STRIDE / weight` per attempt dispatched; the lowest pass goes next.
    passes: HashMap<String, u64>,
    /// The pass of the last tenant served: tenants that were idle restart
    /// from here instead of spending banked credit.
    vtime: u64,
    /// `(class, tenant)` of runs the last dispatch pass left with ready
    /// tasks for want of a slot: a finishing attempt does not hand its slot
    /// to the next task of its own run past them (see [`handover`]).
    slot_waiters: HashSet<(u8, String)>,
    /// Fuel burned per tenant since start.
    fuel: HashMap<String, u64>,
    /// Idempotency keys of triggers to write with their runs.
    idempotency: Vec<(String, String, String, u64)>,
    /// Keys whose runs exist in memory but are not durable yet, so a
    /// concurrent retry with the same key finds the same run.
    idempotency_pending: HashMap<(String, String, String), u64>,
    /// The instant of the last event run per workflow.
    last_event: HashMap<(String, String), i64>,
    /// Changes a store write refused: kept, and written first by the next
    /// persist, so nothing is dropped while memory is ahead of the store.
    unpersisted: Option<Changes>,
    /// Attempts dispatched whose running marks are not durable yet: they
    /// start only after a persist succeeds.
    held: Vec<attempt::Job>,
    /// The store's last write failure and since when writes fail.
    store_failure: Option<StoreFailure>,
    /// Notification events waiting for the persist that makes them
    /// durable (see [`notify`]).
    notices: Vec<(String, crate::notify::Event)>,
    /// Running backfills' progress, for `backfill.stuck`.
    progress: notify::Progress,
}

/// How often committed outputs whose publish failed are tried again.
const PUBLISH_SWEEP_MS: i64 = 30_000;

/// Why the store cannot write, and since when (engine clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    pub since_ms: i64,
    pub message: String,
}

pub(crate) struct Inner {
    store: Arc<dyn StateStore>,
    executor: Arc<Executor>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    state: Mutex<EngineState>,
    persist_lock: tokio::sync::Mutex<()>,
    /// Drains of in-memory changes begun, and the last one that is
    /// durable (see [`Inner::persist`]).
    drains_begun: AtomicU64,
    drains_durable: AtomicU64,
    wake: Notify,
    slots: Arc<Semaphore>,
    in_flight: AtomicUsize,
    /// Effective quotas per tenant (defaults merged with overrides).
    quotas: Mutex<HashMap<String, Arc<crate::quota::Quotas>>>,
    /// Each tenant's parsed egress allowlist (from its record).
    egress: Mutex<HashMap<String, Arc<crate::egress::Allowlist>>>,
    triggers: crate::quota::RateLimiter,
    /// Dataset bytes of commits checked against the quota but not yet
    /// persisted, per tenant.
    dataset_pending: Mutex<HashMap<String, i64>>,
    metrics: crate::metrics::Metrics,
    sealing_key: crate::secrets::SealingKey,
    containers: objects::Containers,
    gap_scan: gaps::GapScan,
    notifier: deliver::Notifier,
}

/// Cheap to clone; all clones drive the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Validation's view of the store.
struct StoreCatalog<'a> {
    store: &'a dyn StateStore,
    tenant: &'a str,
}

impl Catalog for StoreCatalog<'_> {
    fn has_plugin(&self, plugin: &PluginRef) -> bool {
        matches!(self.store.plugin_resolve(self.tenant, plugin), Ok(Some(_)))
    }

    fn upstreams(&self, name: &str) -> Option<Vec<String>> {
        let wf = self.store.workflow_get(self.tenant, name, None).ok()??;
        Some(wf.raw.upstream.iter().map(|u| u.workflow.clone()).collect())
    }

    fn has_connection(&self, name: &str) -> bool {
        matches!(self.store.connection_get(self.tenant, name), Ok(Some(_)))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, EngineState> {
        // State is only mutated through whole transitions; a panic in
        // another holder cannot leave half a transition behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt may start now: always when embedded; on a
    /// cluster node only within the term's tenure, so a leader that woke
    /// from a pause past its lease starts nothing before it learns it lost
    /// the lease (its commits would be refused, but its executions would
    /// still run twice).
    fn may_start(&self) -> bool {
        self.config.tenure.as_ref().is_none_or(|t| t.holds())
    }

    fn def_for(&self, st: &EngineState, run: &Run) -> Option<Arc<WorkflowDef>> {
        let key = (run.tenant.clone(), run.workflow.clone());
        match st.heads.get(&key) {
            Some(h) if h.version == run.version => Some(h.def.clone()),
            _ => st.versions.get(&(key.0, key.1, run.version)).cloned(),
        }
    }

    /// Windows of `workflow` that succeeded in backfill `id`.
    fn stage_succeeded(
        &self,
        tenant: &str,
        id: u64,
        workflow: &str,
    ) -> Result<Vec<(String, crate::schedule::Window)>, EngineError> {
        let mut out = Vec::new();
        let mut after: Option<(String, i64)> = None;
        loop {
            let page = self.store.backfill_windows(
                tenant,
                id,
                after.as_ref().map(|(w, t)| (w.as_str(), *t)),
                1000,
            )?;
            let last = page.len() < 1000;
            for w in page {
                after = Some((w.workflow.clone(), w.window_start));
                if w.workflow == workflow && w.state == crate::store::WindowState::Succeeded {
                    out.push((
                        w.workflow,
                        crate::schedule::Window {
                            start: w.window_start,
                            end: w.window_end,
                        },
                    ));
                }
            }
            if last {
                return Ok(out);
            }
        }
    }

    fn load_version(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
    ) -> Result<Arc<WorkflowDef>, EngineError> {
        let stored = self
            .store
            .workflow_get(tenant, name, Some(version))?
            .ok_or_else(|| EngineError::WorkflowNotFound(name.to_owned()))?;
        let catalog = StoreCatalog {
            store: self.store.as_ref(),
            tenant,
        };
        Ok(Arc::new(stored.raw.validate(&catalog)?))
    }
}

impl Engine {
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    pub fn tenant(&self) -> &str {
        &self.inner.config.tenant
    }

    /// Validates and stores a plugin; returns its version record.
    pub async fn push_plugin(
        &self,
        tenant: &str,
        name: &str,
        wasm: Vec<u8>,
    ) -> Result<PluginMeta, EngineError> {
        check_name("plugin name", name)?;
        self.check_plugin_quota(tenant, wasm.len())?;
        let executor = self.inner.executor.clone();
        let (wasm, plugin) = tokio::task::spawn_blocking(move || {
            let p = executor.load(&wasm);
            (wasm, p)
        })
        .await?;
        let plugin = plugin?;
        let now = self.inner.clock.now_ms();
        Ok(self.inner.store.plugin_put(
            tenant,
            name,
            &plugin.digest,
            &wasm,
            &plugin.exports,
            now,
        )?)
    }

    /// Validates and stores a workflow definition (a new version if it
    /// changed) and schedules it from now on.
    pub async fn apply_workflow(
        &self,
        tenant: &str,
        raw: RawWorkflow,
    ) -> Result<StoredWorkflow, EngineError> {
        let catalog = StoreCatalog {
            store: self.inner.store.as_ref(),
            tenant,
        };
        let def = Arc::new(raw.validate(&catalog)?);
        quotas::check_workflow(&self.inner.quotas(tenant), &def)?;
        egress::check_workflow(&self.inner.egress_allowlist(tenant), &raw)?;
        let stored = self
            .inner
            .store
            .workflow_put(tenant, &raw, self.inner.clock.now_ms())?;
        {
            let mut st = self.inner.lock();
            let key = (tenant.to_owned(), raw.name.clone());
            // Concurrent applies may finish out of order: the newest
            // version stays the head.
            let loaded = Loaded {
                version: stored.version,
                def,
            };
            match st.heads.get(&key).map(|h| h.version) {
                Some(v) if v > stored.version => {
                    st.versions
                        .insert((key.0, key.1, stored.version), loaded.def);
                }
                _ => {
                    if let Some(old) = st.heads.insert(key.clone(), loaded) {
                        if old.version != stored.version {
                            st.versions.insert((key.0, key.1, old.version), old.def);
                        }
                    }
                }
            }
        }
        self.inner.wake.notify_one();
        Ok(stored)
    }

    pub fn workflow(&self, tenant: &str, name: &str) -> Option<Loaded> {
        self.inner
            .lock()
            .heads
            .get(&(tenant.to_owned(), name.to_owned()))
            .cloned()
    }

    /// `Err` while the store refuses writes (what `/readyz` reports).
    pub fn store_health(&self) -> Result<(), StoreFailure> {
        match &self.inner.lock().store_failure {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    /// Attempts currently executing.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Active (not ended) runs.
    pub fn active_runs(&self) -> usize {
        self.inner.lock().runs.len()
    }

    /// Stops scheduling everything of a deleted tenant and drops whatever
    /// its attempts still in flight report.
    pub fn forget_tenant(&self, tenant: &str) {
        let mut st = self.inner.lock();
        st.heads.retain(|(t, _), _| t != tenant);
        st.versions.retain(|(t, _, _), _| t != tenant);
        st.cursors.retain(|(t, _), _| t != tenant);
        let ids: Vec<u64> = st
            .runs
            .values()
            .filter(|r| r.tenant == tenant)
            .map(|r| r.id)
            .collect();
        for id in ids {
            st.runs.remove(&id);
            st.dirty.remove(&id);
        }
        st.forgotten.insert(tenant.to_owned());
        st.passes.remove(tenant);
        st.fuel.remove(tenant);
        drop(st);
        self.inner
            .quotas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        self.inner.forget_egress(tenant);
        self.inner.triggers.forget(tenant);
    }

    /// Runs of a backfill that have not ended.
    pub fn active_runs_of_backfill(&self, id: u64) -> usize {
        self.inner
            .lock()
            .runs
            .values()
            .filter(|r| r.backfill == Some(id))
            .count()
    }

    /// Waits until no attempt is in flight (for tests that step the engine
    /// one pass at a time).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.wake.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Waits for attempts in flight and for their tasks to release the
    /// engine, so the store can be reopened (tests of restarts).
    pub async fn close(self) {
        self.wait_idle().await;
        // Attempt tasks drop their handle right after their last notify, but
        // on a loaded machine they may get no CPU for a while: the bound is
        // only against a leaked handle.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if Arc::strong_count(&self.inner) == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        tracing::warn!("engine still referenced after close");
    }

    /// Wakes the driver (after an external change).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Drives the engine at the current time until nothing more can happen
    /// without time passing: every dispatchable attempt ran. For tests and
    /// benchmarks with a manual clock.
    pub async fn settle(&self) -> Result<(), EngineError> {
        loop {
            let notified = self.inner.wake.notified();
            // An attempt that ends during the pass is only seen by the next
            // pass, so "nothing happened" needs nothing in flight before it.
            let busy_before = self.in_flight();
            let report = self.tick().await?;
            let quiet = report.dispatched == 0 && report.created == 0 && report.changed == 0;
            if quiet && busy_before == 0 && self.in_flight() == 0 {
                return Ok(());
            }
            if self.in_flight() > 0 {
                notified.await;
            }
        }
    }

    /// Runs the driver until `shutdown` completes, then stops dispatching
    /// and waits up to `grace` for attempts in flight; attempts still running
    /// after that are retried on the next start.
    ///
    /// Returns an error if the store refused writes for longer than
    /// [`EngineConfig::store_failure_limit`]: memory is then ahead of the
    /// store, and only a restart (recovery from the store) is safe.
    pub async fn run_until(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
        grace: std::time::Duration,
    ) -> Result<(), EngineError> {
        tokio::pin!(shutdown);
        let mut outcome = Ok(());
        let mut next_sweep = self.inner.clock.now_ms() + PUBLISH_SWEEP_MS;
        loop {
            if self.inner.clock.now_ms() >= next_sweep {
                next_sweep = self.inner.clock.now_ms() + PUBLISH_SWEEP_MS;
                self.inner.sweep_outputs();
            }
            let notified = self.inner.wake.notified();
            let next = match self.tick().await {
                // A pass that changed something (a run ended, a backfill
                // freed capacity) may have enabled more: go again at once.
                Ok(r) if r.changed > 0 || r.created > 0 => Some(self.inner.clock.now_ms()),
                Ok(r) => r.next_wake,
                Err(e) => {
                    tracing::error!("scheduling pass failed: {e}");
                    Some(self.inner.clock.now_ms() + 1000)
                }
            };
            if let Err(f) = self.store_health() {
                let limit = self.inner.config.store_failure_limit.as_millis() as i64;
                if self.inner.clock.now_ms() - f.since_ms >= limit {
                    tracing::error!(
                        "the store has refused writes for over {limit} ms: {}; stopping",
                        f.message
                    );
                    outcome = Err(EngineError::StoreFailed {
                        since: crate::schedule::format_utc(f.since_ms),
                        message: f.message,
                    });
                    break;
                }
            }
            let now = self.inner.clock.now_ms();
            // Even with nothing scheduled, look again within a minute.
            let at = next.unwrap_or(now + 60_000).min(now + 60_000);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = notified => {}
                _ = self.inner.clock.sleep_until(at) => {}
            }
        }
        tracing::info!(
            in_flight = self.in_flight(),
            "shutting down: waiting for attempts in flight"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            let notified = self.inner.wake.notified();
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
        if let Err(e) = self.inner.persist().await {
            tracing::error!("final persist failed: {e}");
        }
        outcome
    }
}
