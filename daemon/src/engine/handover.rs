//! Handing a finished attempt's slot straight to the next task of its run.
//!
//! Without this, a chain of tasks costs two store writes and a scheduling
//! pass per task: the success is persisted, the driver wakes, dispatches the
//! next task and persists its running mark before it may start. Deciding the
//! next task in the same critical section as the success lets one persist
//! make both durable, and the slot, tenant load and backfill-pool count pass
//! from one attempt to the next unchanged.
//!
//! The handover follows the dispatch rules it short-cuts: the run must still
//! be running, the tenant within its quotas, the backfill pool within its
//! cap, and no run that the last dispatch pass left waiting for a slot may
//! be of a more urgent class or, in the same class, of another tenant (they
//! get the slot through the normal pass instead).

use super::attempt::Job;
use super::driver::{backfill_cap, class};
use super::quotas::STRIDE;
use super::{EngineState, Inner};
use crate::run::{RunState, TaskEvent};
use crate::workflow::TaskDef;

/// The attempt the slot passes to.
pub(super) struct Next {
    pub task_index: usize,
    pub attempt: u32,
    pub task: TaskDef,
}

/// Called with the engine locked right after `job`'s success was applied to
/// its run: marks the run's next ready task running (or ends the run if it
/// is complete) and returns the attempt to start once this state is durable.
pub(super) fn next_task(inner: &Inner, st: &mut EngineState, job: &Job, now: i64) -> Option<Next> {
    let run = st.runs.get(&job.run_id)?;
    if run.state != RunState::Running {
        return None;
    }
    let cls = class(run);
    let outranked = st
        .slot_waiters
        .iter()
        .any(|(c, t)| *c < cls || (*c == cls && *t != job.tenant));
    if outranked {
        return None;
    }
    // This attempt is still counted in the loads below, and the next one
    // takes its place: the counts must not be over their limits already
    // (a quota lowered meanwhile, say).
    let quotas = inner.quotas(&job.tenant);
    let load = st.tenant_load.get(&job.tenant).copied().unwrap_or_default();
    if load.live + load.backfill > quotas.concurrent_attempts
        || (job.tenant_backfill && load.backfill > quotas.backfill_attempts())
    {
        return None;
    }
    let total = inner.config.max_concurrent_attempts.max(1);
    if job.pooled_backfill && st.backfill_attempts > backfill_cap(total) {
        return None;
    }
    let run = st.runs.get_mut(&job.run_id)?;
    let adv = match run.advance(&job.def, now) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(run = job.run_id, "cannot advance: {e}");
            return None;
        }
    };
    if adv.finished.is_some() {
        // Its end is written with the success, not a pass later.
        st.end_run(job.run_id, now);
        return None;
    }
    let task_index = *adv.dispatch.first()?;
    let task = &mut run.tasks[task_index];
    let def = job.def.task(&task.name)?.clone();
    task.apply(TaskEvent::Start).ok()?;
    task.attempts += 1;
    let attempt = task.attempts;
    st.dirty.insert(job.run_id);
    // Fair share charges a handed-over attempt like a dispatched one.
    let weight = quotas.weight.max(1) as u64;
    let pass = st.passes.entry(job.tenant.clone()).or_default();
    st.vtime = st.vtime.max(*pass);
    *pass += STRIDE / weight;
    Some(Next {
        task_index,
        attempt,
        task: def,
    })
}

impl Job {
    /// The job of the next attempt, in this one's slot.
    pub(super) fn hand_over(self, next: Next) -> Job {
        Job {
            task_index: next.task_index,
            attempt: next.attempt,
            task: next.task,
            ..self
        }
    }
}
