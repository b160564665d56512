//! One attempt: resolve the plugin, run it, record the outcome durably.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::Inner;
use crate::executor::{AttemptError, AttemptReport, CancelFlag, Invocation, Trigger};
use crate::run::TaskEvent;
use crate::schedule::Window;
use crate::store::{AttemptRecord, TaskData};
use crate::workflow::{OutputCheckPolicy, TaskDef, WorkflowDef};

pub(super) struct Job {
    pub run_id: u64,
    pub task_index: usize,
    pub attempt: u32,
    pub tenant: String,
    pub workflow: String,
    pub window: Window,
    pub timezone: String,
    pub trigger: Trigger,
    /// Counted against the backfill share of the slots.
    pub pooled_backfill: bool,
    pub payload: Vec<u8>,
    pub task: TaskDef,
    pub def: Arc<WorkflowDef>,
    pub permit: OwnedSemaphorePermit,
    pub cancel: CancelFlag,
    /// Counted against the tenant's backfill share of its attempts.
    pub tenant_backfill: bool,
}

impl Job {
    /// The job of attempt `attempt` of task `task_index` of `run`;
    /// `pools` is `(pooled_backfill, tenant_backfill)`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        run: &crate::run::Run,
        task_index: usize,
        attempt: u32,
        task: TaskDef,
        def: &Arc<WorkflowDef>,
        pools: (bool, bool),
        permit: OwnedSemaphorePermit,
        cancel: CancelFlag,
    ) -> Job {
        Job {
            run_id: run.id,
            task_index,
            attempt,
            tenant: run.tenant.clone(),
            workflow: run.workflow.clone(),
            window: run.window(),
            timezone: def.schedule.tz().name().to_owned(),
            trigger: run.trigger,
            pooled_backfill: pools.0,
            tenant_backfill: pools.1,
            payload: run.payload.clone(),
            task,
            def: Arc::clone(def),
            permit,
            cancel,
        }
    }
}

/// Runs `job`, then each attempt its slot is handed over to.
pub(super) async fn run(inner: Arc<Inner>, mut job: Job) {
    use tracing::Instrument;
    loop {
        let span = tracing::info_span!(
            "attempt",
            tenant = job.tenant,
            workflow = job.workflow,
            run = job.run_id,
            task = job.task.name,
            attempt = job.attempt
        );
        match run_in_span(&inner, job).instrument(span).await {
            Some(next) if !inner.may_start() => return hold(&inner, next),
            Some(next) => job = next,
            None => return,
        }
    }
}

/// Holds a handed-over attempt back: it waits with the attempts a pass
/// dispatched, which are not counted in flight yet. The wake comes after
/// the count drops, or a waiter for idle could miss it.
fn hold(inner: &Arc<Inner>, job: Job) {
    inner.lock().held.push(job);
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    inner.wake.notify_one();
}

/// One attempt; returns the next attempt of the run if this one's slot
/// passes to it (see [`super::handover`]).
async fn run_in_span(inner: &Arc<Inner>, job: Job) -> Option<Job> {
    // Before anything is fenced: a record of every execution, duplicates
    // included, for whoever audits a cluster's faults.
    tracing::debug!("attempt started");
    let started = inner.clock.now_ms();
    let mut report = execute(inner, &job).await;
    let ended = inner.clock.now_ms();
    // Guest log lines go to the daemon's log under their own target, so
    // they can be filtered (`RUST_LOG=tidemark::guest=off`) apart.
    for line in &report.log {
        tracing::debug!(target: "tidemark::guest", source = line.source.as_str(), "{}", line.message);
    }
    match &report.result {
        Ok(_) => tracing::debug!(
            elapsed_ms = report.elapsed.as_millis() as u64,
            "attempt succeeded"
        ),
        Err(e) => tracing::info!(kind = e.kind().as_label(), "attempt failed: {e}"),
    }
    let mut reserved = 0;
    if report.succeeded() && !report.outputs.is_empty() {
        match inner.reserve_dataset_bytes(&job.tenant, job.window.start, &report.outputs) {
            Ok(delta) => reserved = delta,
            Err(e) => {
                let quota = match &e {
                    crate::quota::QuotaError::Exceeded { quota, .. } => quota.to_string(),
                    _ => "dataset_bytes".to_owned(),
                };
                report.result = Err(AttemptError::Quota {
                    quota,
                    message: e.to_string(),
                });
                report.outputs = Default::default();
            }
        }
    }
    let (committed, discarded, next) = record(inner, &job, report, started, ended);
    if let Some(staged) = discarded {
        // Not committed (a failure, or a success that no longer counts):
        // the objects go before the attempt counts as ended.
        inner.discard(&job.tenant, staged).await;
    }
    let persisted = inner.persist().await;
    match persisted {
        Ok(()) if !committed.is_empty() => {
            // Durable: the manifests can be written now. A publish that
            // fails stays pending for the engine's sweep.
            inner.publish_outputs(committed).await;
        }
        Ok(()) => {}
        Err(ref e) => tracing::error!(
            run = job.run_id,
            task = job.task.name,
            "recording the attempt failed: {e}"
        ),
    }
    inner.release_dataset_bytes(&job.tenant, reserved);
    if let Some(next) = next {
        // The slot, loads and in-flight count pass to the next attempt.
        let job = job.hand_over(next);
        if persisted.is_ok() {
            inner.wake.notify_one();
            return Some(job);
        }
        // Its running mark is not durable.
        hold(inner, job);
        return None;
    }
    {
        let mut st = inner.lock();
        if job.pooled_backfill {
            st.backfill_attempts = st.backfill_attempts.saturating_sub(1);
        }
        if let Some(load) = st.tenant_load.get_mut(&job.tenant) {
            if job.tenant_backfill {
                load.backfill = load.backfill.saturating_sub(1);
            } else {
                load.live = load.live.saturating_sub(1);
            }
        }
    }
    drop(job.permit);
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    inner.wake.notify_one();
    None
}

async fn execute(inner: &Arc<Inner>, job: &Job) -> AttemptReport {
    let host_failure = |message: String| AttemptReport {
        result: Err(AttemptError::Host { message }),
        log: Vec::new(),
        outputs: Default::default(),
        fuel_consumed: None,
        memory_peak: 0,
        elapsed: Default::default(),
        http: Vec::new(),
        objects: Default::default(),
        reads: Vec::new(),
        reads_omitted: 0,
        plugin_digest: None,
    };
    let meta = match inner.store.plugin_resolve(&job.tenant, &job.task.plugin) {
        Ok(Some(m)) => m,
        Ok(None) => return host_failure(format!("plugin {} is not stored", job.task.plugin)),
        Err(e) => return host_failure(format!("resolving plugin {}: {e}", job.task.plugin)),
    };
    let plugin = match inner.executor.get(&meta.digest) {
        Some(p) => p,
        None => {
            let blob = match inner.store.plugin_blob(&job.tenant, &meta.digest) {
                Ok(Some(b)) => b,
                Ok(None) => return host_failure(format!("plugin blob {} is missing", meta.digest)),
                Err(e) => return host_failure(format!("reading plugin {}: {e}", meta.digest)),
            };
            let executor = inner.executor.clone();
            match tokio::task::spawn_blocking(move || executor.load(&blob)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return host_failure(format!("loading plugin {}: {e}", meta.digest)),
                Err(e) => return host_failure(format!("loading plugin {}: {e}", meta.digest)),
            }
        }
    };
    let mut limits = inner.config.limits.clone();
    if let Some(f) = job.task.fuel {
        limits.fuel = f;
    }
    if let Some(m) = job.task.memory {
        limits.memory_bytes = m;
    }
    if let Some(t) = job.task.timeout {
        limits.timeout = t;
    }
    // The tenant's per-attempt quotas are ceilings inside the sandbox.
    inner.quotas(&job.tenant).cap(&mut limits);
    // Outbound HTTP: both the tenant's allowlist and the task's own decide
    // each request (checked again at request time: the tenant's may have
    // shrunk since the workflow was applied).
    limits.egress.tenant = (*inner.egress_allowlist(&job.tenant)).clone();
    limits.egress.task = job.task.allowed_hosts.clone();
    // The workflow's http connections, secrets opened now (a rotation
    // applies from the next attempt): the host adds them to requests.
    limits.egress.credentials = match inner.http_credentials(&job.tenant, &job.def.connections) {
        Ok(c) => c,
        Err(message) => return host_failure(message),
    };
    if !job.def.connections.is_empty() {
        limits.objects = inner.object_access(&job.tenant, &job.def.connections).await;
    }
    let inv = Invocation {
        tenant: job.tenant.clone(),
        workflow: job.workflow.clone(),
        task: job.task.name.clone(),
        run_id: job.run_id.to_string(),
        window_start_ms: job.window.start,
        window_end_ms: job.window.end,
        timezone: job.timezone.clone(),
        attempt: job.attempt,
        trigger: job.trigger,
        params: job.task.params.clone(),
        payload: job.payload.clone(),
    };
    let data: Arc<dyn TaskData> = inner.store.clone();
    inner
        .executor
        .run_cancellable(&plugin, &inv, &limits, data, &job.cancel)
        .await
}

/// Applies the outcome to the run in memory and stages its records; the
/// caller persists. Returns the object-storage outputs committed with it,
/// and the staged objects to delete if they were not.
fn record(
    inner: &Arc<Inner>,
    job: &Job,
    mut report: AttemptReport,
    started: i64,
    ended: i64,
) -> (
    Vec<(String, crate::store::OutputRecord)>,
    Option<crate::executor::StagedObjects>,
    Option<super::handover::Next>,
) {
    let mut staged = Some(std::mem::take(&mut report.objects));
    let mut next = None;
    let committed = record_outcome(inner, job, report, started, ended, &mut staged, &mut next);
    (committed, staged.filter(|s| !s.is_empty()), next)
}

fn record_outcome(
    inner: &Arc<Inner>,
    job: &Job,
    report: AttemptReport,
    started: i64,
    ended: i64,
    staged: &mut Option<crate::executor::StagedObjects>,
    next: &mut Option<super::handover::Next>,
) -> Vec<(String, crate::store::OutputRecord)> {
    let mut committed = Vec::new();
    let mut st = inner.lock();
    let st = &mut *st;
    if let Some(f) = report.fuel_consumed {
        *st.fuel.entry(job.tenant.clone()).or_default() += f;
        let labels = crate::metrics::labels(&[("tenant", &job.tenant)]);
        inner.metrics.fuel.get_or_create(&labels).inc_by(f);
    }
    let outcome = match &report.result {
        Ok(_) => "succeeded",
        Err(e) => e.kind().as_label(),
    };
    let labels = crate::metrics::labels(&[("tenant", &job.tenant), ("outcome", outcome)]);
    inner.metrics.attempts.get_or_create(&labels).inc();
    for r in &report.http {
        let labels =
            crate::metrics::labels(&[("tenant", &job.tenant), ("outcome", r.outcome.as_label())]);
        inner.metrics.http_requests.get_or_create(&labels).inc();
        for (direction, n) in [("out", r.bytes_out), ("in", r.bytes_in)] {
            let labels =
                crate::metrics::labels(&[("tenant", &job.tenant), ("direction", direction)]);
            inner.metrics.http_bytes.get_or_create(&labels).inc_by(n);
        }
    }
    let (error_kind, message) = match &report.result {
        Ok(summary) => (None, summary.clone()),
        Err(e) => (Some(e.kind()), e.to_string()),
    };
    st.attempts.push((
        job.tenant.clone(),
        AttemptRecord {
            run_id: job.run_id,
            task: job.task.name.clone(),
            attempt: job.attempt,
            started_ms: started,
            ended_ms: ended,
            error_kind,
            message: message.clone(),
            fuel: report.fuel_consumed,
            log: report.log,
            http: report.http,
            plugin: Some(plugin_key(&job.task.plugin).to_owned()),
            bytes_written: None,
            plugin_digest: report.plugin_digest,
            reads: report.reads,
            reads_omitted: report.reads_omitted,
        },
    ));
    let fuel = report.fuel_consumed.unwrap_or(0);
    let Some(run) = st.runs.get_mut(&job.run_id) else {
        tracing::warn!(
            run = job.run_id,
            "attempt ended for a run that is no longer active"
        );
        return committed;
    };
    let backfill = run.backfill;
    let task = &mut run.tasks[job.task_index];
    let mut succeeded = false;
    let mut written = 0;
    match report.result {
        Ok(_) => {
            if task.apply(TaskEvent::Succeed).is_ok() {
                succeeded = true;
                task.last_error = None;
                // The outputs commit in the same batch as the success.
                let mut bytes = report.outputs.bytes() as u64;
                st.outputs
                    .push((job.tenant.clone(), job.window.start, report.outputs));
                if let Some(objects) = staged.take() {
                    let check = job.def.output_check == OutputCheckPolicy::AfterWindow;
                    committed = inner.object_outputs(&job.tenant, objects, ended, check);
                    st.object_outputs.extend(committed.iter().cloned());
                    bytes += committed
                        .iter()
                        .flat_map(|(_, o)| &o.objects)
                        .map(|o| o.size)
                        .sum::<u64>();
                }
                written = bytes;
                if let Some((_, a)) = st.attempts.last_mut() {
                    a.bytes_written = Some(bytes);
                }
            }
        }
        Err(AttemptError::Cancelled) => {
            if task.apply(TaskEvent::Cancel).is_ok() {
                task.last_error = Some(message);
            }
        }
        Err(e) => {
            task.failures += 1;
            let delay = if e.retryable() {
                job.task.retry.delay_before(task.failures + 1)
            } else {
                None
            };
            if task
                .apply(TaskEvent::Fail {
                    retry: delay.is_some(),
                })
                .is_ok()
            {
                task.retry_at = delay.map(|d| ended + d.as_millis() as i64);
                task.last_error = Some(message);
            }
        }
    }
    // What the backfill spent, for its budget and its estimate-vs-actual.
    if let Some(b) = backfill.and_then(|id| st.backfills.get_mut(&id)) {
        b.record.actual.task_runs += 1;
        b.record.actual.fuel = b.record.actual.fuel.saturating_add(fuel);
        b.record.actual.bytes = b.record.actual.bytes.saturating_add(written);
        st.dirty_backfills.insert(b.record.id);
    }
    let Some(run) = st.runs.get_mut(&job.run_id) else {
        return committed;
    };
    let run_over = run.state.is_terminal()
        && !run
            .tasks
            .iter()
            .any(|t| t.state == crate::run::TaskState::Running);
    // Before the run can end (here or in a scheduling pass), so its end
    // finds them.
    st.await_checks(job.run_id, &committed);
    if run_over {
        // A cancelled run whose last attempt just ended.
        st.end_run(job.run_id, ended);
        return committed;
    }
    st.dirty.insert(job.run_id);
    if succeeded {
        *next = super::handover::next_task(inner, st, job, ended);
    }
    committed
}

/// How estimates name a task's plugin: its name, or its digest.
pub(super) fn plugin_key(p: &crate::workflow::PluginRef) -> &str {
    use crate::workflow::PluginRef;
    match p {
        PluginRef::Latest(n) | PluginRef::Version(n, _) => n,
        PluginRef::Digest(d) => d,
    }
}
