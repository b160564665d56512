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
use crate::schedule::{format_utc, Schedule};

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

impl Engine {
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let mut report = TickReport::default();
        self.create_live_runs(now, &mut report).await?;

        let mut to_spawn = Vec::new();
        {
            let mut st = inner.lock();
            let st = &mut *st;
            // New backfill runs too must pass the upstream check before
            // they can start.
            super::backfills::advance(inner, st, now, &mut report);
            recheck_upstream(inner, st, now, &mut report);
            start_queued(st, now, &mut report);
            dispatch(inner, st, now, &mut report, &mut to_spawn);
        }
        // Running marks must be durable before the attempts start.
        inner.persist().await?;
        for job in to_spawn {
            inner.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(attempt::run(self.inner.clone(), job));
        }
        Ok(report)
    }

    async fn create_live_runs(&self, now: i64, report: &mut TickReport) -> Result<(), EngineError> {
        let inner = &self.inner;
        let heads: Vec<((String, String), super::Loaded)> = inner
            .lock()
            .heads
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((tenant, name), head) in heads {
            let def = &head.def;
            report.next_wake = earliest(report.next_wake, def.schedule.next_tick(now));
            let cursor = {
                let cached = inner
                    .lock()
                    .cursors
                    .get(&(tenant.clone(), name.clone()))
                    .copied();
                match cached {
                    Some(c) => c,
                    None => inner.store.cursor_get(&tenant, &name)?,
                }
            };
            let (due, new_cursor) =
                planner::due_windows(def, cursor, now, inner.config.max_new_runs_per_tick);
            if due.len() == inner.config.max_new_runs_per_tick {
                // More catch-up windows remain: come back at once.
                report.next_wake = Some(now);
            }
            let mut runs = Vec::with_capacity(due.len());
            for w in due {
                // A window that already has a run (say, run by hand before it
                // closed) is not created twice.
                if inner.store.window_get(&tenant, &name, w.start)?.is_some() {
                    continue;
                }
                let id = inner.store.next_run_id()?;
                runs.push(Run::new(
                    id,
                    &tenant,
                    def,
                    head.version,
                    w,
                    Trigger::Scheduled,
                    now,
                ));
            }
            let mut st = inner.lock();
            st.cursors
                .insert((tenant.clone(), name.clone()), new_cursor);
            if let (Some(c), true) = (new_cursor, new_cursor != cursor) {
                st.cursor_changes.push((tenant.clone(), name.clone(), c));
            }
            report.created += runs.len();
            for r in runs {
                st.dirty.insert(r.id);
                st.runs.insert(r.id, r);
            }
        }
        // Created runs and the cursor land in one atomic change: a window is
        // created exactly once, also across restarts.
        inner.persist().await
    }
}

fn recheck_upstream(inner: &Inner, st: &mut EngineState, now: i64, report: &mut TickReport) {
    // Most workflows have no upstream: skip their runs without a lookup.
    let mut with_upstream: HashMap<&str, HashSet<&str>> = HashMap::new();
    for ((tenant, name), l) in &st.heads {
        if !l.def.upstream.is_empty() {
            with_upstream
                .entry(tenant.as_str())
                .or_default()
                .insert(name.as_str());
        }
    }
    for ((tenant, name, _), def) in &st.versions {
        if !def.upstream.is_empty() {
            with_upstream
                .entry(tenant.as_str())
                .or_default()
                .insert(name.as_str());
        }
    }
    if with_upstream.is_empty() {
        return;
    }
    let ids: Vec<u64> = st
        .runs
        .values()
        .filter(|r| matches!(r.state, RunState::Queued | RunState::WaitingUpstream))
        .filter(|r| {
            with_upstream
                .get(r.tenant.as_str())
                .is_some_and(|w| w.contains(r.workflow.as_str()))
        })
        .map(|r| r.id)
        .collect();
    let schedules: HashMap<String, (Schedule, i64)> = st
        .heads
        .iter()
        .map(|((_, name), l)| (name.clone(), (l.def.schedule.clone(), l.def.start)))
        .collect();
    for id in ids {
        let Some(run) = st.runs.get(&id) else {
            continue;
        };
        let Some(def) = inner.def_for(st, run) else {
            continue;
        };
        let tenant = run.tenant.clone();
        let store = inner.store.clone();
        let waits = planner::upstream_waits(
            &def,
            run.window(),
            &|name| schedules.get(name).cloned(),
            &|name, start| {
                store
                    .window_get(&tenant, name, start)
                    .ok()
                    .flatten()
                    .map(|w| w.state)
            },
        );
        // A backfill repairs closed windows: waiting for an upstream window
        // that failed, or that never ran long after it closed, would never end.
        let unsatisfied = match run.backfill {
            None => None,
            Some(_) => waits.iter().find_map(|w| {
                match store
                    .window_get(&tenant, &w.workflow, w.window_start)
                    .ok()
                    .flatten()
                    .map(|r| r.state)
                {
                    Some(s) if s.is_terminal() => Some(s.as_str()),
                    None if w.window_end + UPSTREAM_GRACE_MS <= now => Some("never ran"),
                    _ => None,
                }
                .map(|why| {
                    format!(
                        "upstream window {} {} has not succeeded ({why}): repair it first (or include it in the backfill)",
                        w.workflow,
                        format_utc(w.window_start)
                    )
                })
            }),
        };
        let Some(run) = st.runs.get_mut(&id) else {
            continue;
        };
        if let Some(error) = unsatisfied {
            if run.apply(RunEvent::UpstreamUnsatisfied, now).is_ok() {
                for t in &mut run.tasks {
                    if t.apply(TaskEvent::UpstreamFailed).is_ok() {
                        t.last_error = Some(error.clone());
                    }
                }
                run.waiting_on = waits;
                if let Some(run) = st.runs.remove(&id) {
                    st.dirty.remove(&id);
                    tracing::info!(run = id, %error, "backfill run failed on its upstream");
                    super::backfills::run_ended(st, &run, now);
                    st.ended.push(run);
                    report.changed += 1;
                }
            }
            continue;
        }
        let event = if waits.is_empty() {
            RunEvent::UpstreamReady
        } else {
            RunEvent::UpstreamPending
        };
        let before = (run.state, run.waiting_on.len());
        if run.apply(event, now).is_ok() {
            run.waiting_on = waits;
            if (run.state, run.waiting_on.len()) != before {
                st.dirty.insert(id);
                report.changed += 1;
            }
        }
    }
}

fn start_queued(st: &mut EngineState, now: i64, report: &mut TickReport) {
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
    // Urgent backfills first, then live runs, then backfills by priority.
    let class = |r: &Run| match r.priority {
        Some(Priority::High) => 0u8,
        None => 1,
        Some(Priority::Normal) => 2,
        Some(Priority::Low) => 3,
    };
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
    // Shares: live runs keep a quarter of the slots that backfills cannot
    // take; backfills keep one slot that live runs cannot take while they
    // have work. Neither side starves the other.
    let total = inner.config.max_concurrent_attempts.max(1);
    let live_reserve = if total >= 4 {
        total / 4
    } else {
        usize::from(total >= 2)
    };
    let backfill_cap = total - live_reserve;
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
                if pooled_backfill && backfill_attempts + dispatched_backfill >= backfill_cap {
                    break;
                }
                if !pooled_backfill && live_in_flight + backfill_min >= total {
                    break;
                }
                let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
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
                to_spawn.push(attempt::Job {
                    run_id: id,
                    task_index: i,
                    attempt: task.attempts,
                    tenant: run.tenant.clone(),
                    workflow: run.workflow.clone(),
                    window: run.window(),
                    timezone: def.schedule.tz().name().to_owned(),
                    trigger: run.trigger,
                    pooled_backfill,
                    tenant_backfill,
                    payload: run.payload.clone(),
                    task: task_def,
                    def: Arc::clone(&def),
                    permit,
                    cancel: st.cancel_flags.entry(id).or_default().clone(),
                });
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
                if let Some(run) = st.runs.remove(&id) {
                    tracing::info!(
                        run = id,
                        workflow = run.workflow,
                        state = run.state.as_str(),
                        "run ended"
                    );
                    st.dirty.remove(&id);
                    super::backfills::run_ended(st, &run, now);
                    st.ended.push(run);
                }
            } else if touched {
                st.dirty.insert(id);
            }
        }
    }
}
