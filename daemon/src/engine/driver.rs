//! One scheduling pass: create due live runs, re-check upstream waits, start
//! queued runs, dispatch ready tasks.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::quotas::STRIDE;
use super::{attempt, Engine, EngineError, EngineState, Inner};
use crate::backfill::Priority;
use crate::executor::Trigger;
use crate::planner;
use crate::run::{Run, RunEvent, RunState, TaskEvent};
use crate::workflow::WorkflowDef;

/// How long after an upstream window closed a backfill run keeps waiting for
/// its (live) run to appear before it gives up.
pub const UPSTREAM_GRACE_MS: i64 = 5 * 60_000;

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub created: usize,
    pub dispatched: usize,
    /// Runs whose state changed without a dispatch (started, waiting, ended).
    pub changed: usize,
    /// When something will be due without any other event.
    pub next_wake: Option<i64>,
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Live runs a workflow may have queued or running at once while it catches
/// up, per allowed active run: catch-up windows are created as earlier
/// ones end, not all at once.
const CATCHUP_AHEAD: usize = 2;

impl Engine {
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let mut report = TickReport::default();
        // Changes a failed write left behind go first, and attempts held
        // for them start only once they are durable.
        self.release_held().await?;
        self.create_live_runs(now, &mut report).await?;

        // Store reads happen before the lock is taken: window states for
        // backfill materialization, quota records, upstream states.
        let prefetched = super::materialize::prefetch(inner)?;
        {
            let mut st = inner.lock();
            super::backfills::advance(inner, &mut st, now, &mut report, &prefetched);
            let stuck_after = inner.config.stuck_after.as_millis() as i64;
            super::notify::check_stuck(&mut st, now, stuck_after);
        }
        let checked = self.check_upstream(now, &mut report)?;
        inner.warm_quotas();
        let mut to_spawn = Vec::new();
        {
            let mut st = inner.lock();
            let st = &mut *st;
            start_queued(st, now, &mut report, &checked);
            dispatch(inner, st, now, &mut report, &mut to_spawn);
        }
        // Running marks must be durable before the attempts start.
        if let Err(e) = inner.persist().await {
            inner.lock().held.extend(to_spawn);
            return Err(e);
        }
        spawn(&self.inner, to_spawn);
        self.inner.start_checks();
        self.start_gap_scan(now);
        Ok(report)
    }

    /// Persists what is pending, then starts the attempts held back by a
    /// failed write.
    async fn release_held(&self) -> Result<(), EngineError> {
        if self.inner.lock().held.is_empty() {
            return Ok(());
        }
        self.inner.persist().await?;
        let held = std::mem::take(&mut self.inner.lock().held);
        spawn(&self.inner, held);
        Ok(())
    }

    async fn create_live_runs(&self, now: i64, report: &mut TickReport) -> Result<(), EngineError> {
        let inner = &self.inner;
        struct Head {
            tenant: String,
            name: String,
            loaded: super::Loaded,
            cursor: Option<Option<i64>>,
            active: usize,
        }
        let (heads, total_active) = {
            let st = inner.lock();
            let mut active: HashMap<(&str, &str), usize> = HashMap::new();
            for r in st.runs.values().filter(|r| r.trigger != Trigger::Event) {
                *active
                    .entry((r.tenant.as_str(), r.workflow.as_str()))
                    .or_default() += 1;
            }
            let heads: Vec<Head> = st
                .heads
                .iter()
                .map(|((t, n), l)| Head {
                    tenant: t.clone(),
                    name: n.clone(),
                    loaded: l.clone(),
                    cursor: st.cursors.get(&(t.clone(), n.clone())).copied(),
                    active: active.get(&(t.as_str(), n.as_str())).copied().unwrap_or(0),
                })
                .collect();
            (heads, st.runs.len())
        };
        let overloaded = total_active >= inner.config.backfill_admission_limit;
        for h in heads {
            let def = &h.loaded.def;
            report.next_wake = earliest(report.next_wake, def.schedule.next_tick(now));
            // Catch-up is materialized as capacity frees: a workflow keeps
            // at most a few runs ahead of what it may run, and none beyond
            // its first while the daemon is over its admission limit.
            let ceiling = (def.max_active_runs as usize)
                .saturating_mul(CATCHUP_AHEAD)
                .max(1);
            let mut allowed = ceiling.saturating_sub(h.active);
            if overloaded && h.active > 0 {
                allowed = 0;
            }
            let max = allowed.min(inner.config.max_new_runs_per_tick);
            if max == 0 {
                continue;
            }
            let cursor = match h.cursor {
                Some(c) => c,
                None => inner.store.cursor_get(&h.tenant, &h.name)?,
            };
            let (due, new_cursor) = planner::due_windows(def, cursor, now, max);
            if due.len() == inner.config.max_new_runs_per_tick {
                // More catch-up windows remain: come back at once.
                report.next_wake = Some(now);
            }
            // A window that already has a run (say, run by hand before it
            // closed) is not created twice: the store knows the durable
            // ones, memory (below) the ones not yet persisted.
            let mut fresh = Vec::with_capacity(due.len());
            for w in due {
                if inner
                    .store
                    .window_get(&h.tenant, &h.name, w.start)?
                    .is_none()
                {
                    fresh.push((w, inner.store.next_run_id()?));
                }
            }
            let mut st = inner.lock();
            st.cursors
                .insert((h.tenant.clone(), h.name.clone()), new_cursor);
            if let (Some(c), true) = (new_cursor, new_cursor != cursor) {
                st.cursor_changes
                    .push((h.tenant.clone(), h.name.clone(), c));
            }
            for (w, id) in fresh {
                if st.window_run(&h.tenant, &h.name, w.start).is_some() {
                    continue;
                }
                let run = Run::new(
                    id,
                    &h.tenant,
                    def,
                    h.loaded.version,
                    w,
                    Trigger::Scheduled,
                    now,
                )
                .with_provenance(crate::run::Provenance::scheduled());
                report.created += 1;
                st.dirty.insert(id);
                st.runs.insert(id, run);
            }
        }
        // Created runs and the cursor land in one atomic change: a window is
        // created exactly once, also across restarts.
        inner.persist().await
    }
}

fn spawn(inner: &Arc<Inner>, jobs: Vec<attempt::Job>) {
    if !inner.may_start() {
        // Outside the node's tenure: held until a later pass finds it
        // renewed (or the engine stops, when it was lost).
        inner.lock().held.extend(jobs);
        return;
    }
    for job in jobs {
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(attempt::run(inner.clone(), job));
    }
}

fn start_queued(st: &mut EngineState, now: i64, report: &mut TickReport, checked: &HashSet<u64>) {
    // Free run slots per tenant and workflow; the scan over queued runs (in
    // creation order) stops as soon as no workflow has a free slot.
    let mut free: HashMap<String, HashMap<String, u32>> = HashMap::new();
    let mut total_free: u64 = 0;
    for ((tenant, name), l) in &st.heads {
        free.entry(tenant.clone())
            .or_default()
            .insert(name.clone(), l.def.max_active_runs);
        total_free += l.def.max_active_runs as u64;
    }
    for r in st.runs.values().filter(|r| r.state == RunState::Running) {
        if let Some(n) = free
            .get_mut(r.tenant.as_str())
            .and_then(|w| w.get_mut(r.workflow.as_str()))
        {
            if *n > 0 {
                *n -= 1;
                total_free -= 1;
            }
        }
    }
    for run in st.runs.values_mut() {
        if total_free == 0 {
            break;
        }
        if run.state != RunState::Queued {
            continue;
        }
        // A run with upstream dependencies starts only right after a check
        // that found them all succeeded.
        if !checked.contains(&run.id) && needs_check(&st.heads, &st.versions, run) {
            continue;
        }
        let Some(n) = free
            .get_mut(run.tenant.as_str())
            .and_then(|w| w.get_mut(run.workflow.as_str()))
        else {
            continue;
        };
        if *n == 0 {
            continue;
        }
        if run.apply(RunEvent::Start, now).is_ok() {
            *n -= 1;
            total_free -= 1;
            st.dirty.insert(run.id);
            report.changed += 1;
        }
    }
}

fn dispatch(
    inner: &Inner,
    st: &mut EngineState,
    now: i64,
    report: &mut TickReport,
    to_spawn: &mut Vec<attempt::Job>,
) {
    // Per class, per tenant, oldest run first (runs iterate in id order).
    let mut queues: BTreeMap<u8, BTreeMap<String, VecDeque<u64>>> = BTreeMap::new();
    for r in st.runs.values().filter(|r| r.state == RunState::Running) {
        queues
            .entry(class(r))
            .or_default()
            .entry(r.tenant.clone())
            .or_default()
            .push_back(r.id);
    }
    let total = inner.config.max_concurrent_attempts.max(1);
    let backfill_cap = backfill_cap(total);
    st.slot_waiters.clear();
    // Only backfills that their tenant's quota lets start hold a slot back.
    let backfill_waiting = queues.range(2..).any(|(_, tenants)| {
        tenants.keys().any(|t| {
            let q = inner.quotas(t);
            let load = st.tenant_load.get(t).copied().unwrap_or_default();
            load.backfill < q.backfill_attempts()
                && load.live + load.backfill < q.concurrent_attempts
        })
    });
    let backfill_min = usize::from(total >= 2 && backfill_waiting);
    let mut live_in_flight = inner
        .in_flight
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(st.backfill_attempts);
    // A tenant that was idle restarts from the current virtual time rather
    // than spending credit it banked while idle.
    let vtime = st.vtime;
    for tenants in queues.values() {
        for t in tenants.keys() {
            let p = st.passes.entry(t.clone()).or_insert(vtime);
            *p = (*p).max(vtime);
        }
    }
    for (cls, mut tenants) in queues {
        let pooled_backfill = cls >= 2;
        // Fair share: the tenant with the lowest pass goes next.
        while let Some(tenant) = tenants
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .min_by_key(|(t, _)| (st.passes.get(*t).copied().unwrap_or(0), *t))
            .map(|(t, _)| t.clone())
        {
            let Some(id) = tenants.get_mut(&tenant).and_then(|q| q.pop_front()) else {
                break;
            };
            let Some(run) = st.runs.get(&id) else {
                continue;
            };
            let Some(def) = inner.def_for(st, run) else {
                continue;
            };
            let tenant_backfill = run.backfill.is_some();
            let quotas = inner.quotas(&tenant);
            let weight = quotas.weight.max(1) as u64;
            let backfill_attempts = st.backfill_attempts;
            let mut load = st.tenant_load.get(&tenant).copied().unwrap_or_default();
            let Some(run) = st.runs.get_mut(&id) else {
                continue;
            };
            let adv = match run.advance(&def, now) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(run = id, "cannot advance: {e}");
                    continue;
                }
            };
            report.next_wake = earliest(report.next_wake, adv.next_retry_at);
            let mut touched = adv.finished.is_some();
            let first_dispatch =
                run.trigger == Trigger::Scheduled && run.tasks.iter().all(|t| t.attempts == 0);
            let mut dispatched_backfill = 0;
            let mut dispatched = 0u64;
            for i in adv.dispatch {
                // The tenant's own quota, and its backfills' share of it.
                if load.live + load.backfill >= quotas.concurrent_attempts
                    || (tenant_backfill && load.backfill >= quotas.backfill_attempts())
                {
                    break;
                }
                let no_slot = (pooled_backfill
                    && backfill_attempts + dispatched_backfill >= backfill_cap)
                    || (!pooled_backfill && live_in_flight + backfill_min >= total);
                let permit = match no_slot {
                    false => inner.slots.clone().try_acquire_owned().ok(),
                    true => None,
                };
                let Some(permit) = permit else {
                    st.slot_waiters.insert((cls, tenant.clone()));
                    break;
                };
                let task = &mut run.tasks[i];
                if task.apply(TaskEvent::Start).is_err() {
                    continue;
                }
                if pooled_backfill {
                    dispatched_backfill += 1;
                } else {
                    live_in_flight += 1;
                }
                if tenant_backfill {
                    load.backfill += 1;
                } else {
                    load.live += 1;
                }
                dispatched += 1;
                task.attempts += 1;
                touched = true;
                report.dispatched += 1;
                let Some(task_def) = def.task(&task.name).cloned() else {
                    continue;
                };
                let attempt = task.attempts;
                let cancel = st.cancel_flags.entry(id).or_default().clone();
                to_spawn.push(attempt::Job::new(
                    run,
                    i,
                    attempt,
                    task_def,
                    &def,
                    (pooled_backfill, tenant_backfill),
                    permit,
                    cancel,
                ));
            }
            st.backfill_attempts += dispatched_backfill;
            if first_dispatch && dispatched > 0 {
                let labels = crate::metrics::labels(&[("tenant", &tenant)]);
                let late = (now - run.window_end).max(0) as f64 / 1000.0;
                inner
                    .metrics
                    .dispatch_latency
                    .get_or_create(&labels)
                    .observe(late);
            }
            if dispatched > 0 {
                st.tenant_load.insert(tenant.clone(), load);
                let pass = st.passes.entry(tenant.clone()).or_default();
                st.vtime = st.vtime.max(*pass);
                *pass += dispatched * STRIDE / weight;
            }
            if adv.finished.is_some() {
                report.changed += 1;
                st.end_run(id, now);
            } else if touched {
                st.dirty.insert(id);
            }
        }
    }
}

/// Dispatch order: urgent backfills first, then live runs, then backfills
/// by priority. Classes 2 and up share the backfill pool.
pub(super) fn class(r: &Run) -> u8 {
    match r.priority {
        Some(Priority::High) => 0,
        None => 1,
        Some(Priority::Normal) => 2,
        Some(Priority::Low) => 3,
    }
}

/// Slots backfill attempts may hold of `total`: live runs keep a quarter
/// that backfills cannot take; backfills keep one slot that live runs
/// cannot take while they have work. Neither side starves the other.
pub(super) fn backfill_cap(total: usize) -> usize {
    let live_reserve = if total >= 4 {
        total / 4
    } else {
        usize::from(total >= 2)
    };
    total - live_reserve
}

/// Whether `run`'s workflow version has upstream dependencies.
fn needs_check(
    heads: &HashMap<(String, String), super::Loaded>,
    versions: &HashMap<(String, String, u32), Arc<WorkflowDef>>,
    run: &Run,
) -> bool {
    let key = (run.tenant.clone(), run.workflow.clone());
    match heads.get(&key) {
        Some(h) if h.version == run.version => !h.def.upstream.is_empty(),
        _ => versions
            .get(&(key.0, key.1, run.version))
            .is_some_and(|d| !d.upstream.is_empty()),
    }
}
