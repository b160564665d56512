//! The upstream check of a scheduling pass: which upstream windows each
//! queued or waiting run needs, their states read without the engine lock
//! (one range read per dependency), and the runs moved accordingly.

use std::collections::{HashMap, HashSet};

use super::driver::{TickReport, UPSTREAM_GRACE_MS};
use super::{Engine, EngineError, Inner};
use crate::planner;
use crate::run::{RunEvent, RunState, TaskEvent, UpstreamRun};
use crate::schedule::{format_utc, Schedule};
use crate::store::WindowRecord;

impl Engine {
    /// Re-checks the upstream windows of queued and waiting runs. Their
    /// states are read without the engine lock, one range read per
    /// dependency; the runs checked are returned (only they may start in
    /// this pass, so a run created meanwhile waits for its own check).
    pub(super) fn check_upstream(
        &self,
        now: i64,
        report: &mut TickReport,
    ) -> Result<HashSet<u64>, EngineError> {
        let inner = &self.inner;
        struct Candidate {
            id: u64,
            tenant: String,
            backfill: bool,
            /// Every upstream window it needs, by dependency, in time order.
            needed: Vec<crate::run::UpstreamWait>,
        }
        let candidates = {
            let st = inner.lock();
            // Most workflows have no upstream: skip their runs without a
            // lookup.
            let with_upstream: HashSet<(&str, &str)> = st
                .heads
                .iter()
                .filter(|(_, l)| !l.def.upstream.is_empty())
                .map(|((t, n), _)| (t.as_str(), n.as_str()))
                .chain(
                    st.versions
                        .iter()
                        .filter(|(_, d)| !d.upstream.is_empty())
                        .map(|((t, n, _), _)| (t.as_str(), n.as_str())),
                )
                .collect();
            if with_upstream.is_empty() {
                return Ok(HashSet::new());
            }
            // Upstream schedules per tenant: one tenant's workflow never
            // stands in for another's of the same name.
            let schedules: HashMap<(&str, &str), (Schedule, i64)> = st
                .heads
                .iter()
                .map(|((t, n), l)| {
                    (
                        (t.as_str(), n.as_str()),
                        (l.def.schedule.clone(), l.def.start),
                    )
                })
                .collect();
            let mut out = Vec::new();
            for run in st
                .runs
                .values()
                .filter(|r| matches!(r.state, RunState::Queued | RunState::WaitingUpstream))
            {
                if !with_upstream.contains(&(run.tenant.as_str(), run.workflow.as_str())) {
                    continue;
                }
                let Some(def) = inner.def_for(&st, run) else {
                    continue;
                };
                let tenant = run.tenant.as_str();
                let needed = planner::upstream_windows(&def, run.window(), &|name| {
                    schedules.get(&(tenant, name)).cloned()
                });
                out.push(Candidate {
                    id: run.id,
                    tenant: run.tenant.clone(),
                    backfill: run.backfill.is_some(),
                    needed,
                });
            }
            out
        };
        let mut results = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let states = upstream_states(inner, &c.tenant, &c.needed)?;
            let state_of = |w: &crate::run::UpstreamWait| {
                states
                    .get(&(w.workflow.as_str(), w.window_start))
                    .map(|r| r.state)
            };
            let waits: Vec<crate::run::UpstreamWait> = c
                .needed
                .iter()
                .filter(|w| state_of(w) != Some(RunState::Succeeded))
                .cloned()
                .collect();
            // A backfill repairs closed windows: waiting for an upstream
            // window that failed, or that never ran long after it closed,
            // would never end.
            let unsatisfied = if c.backfill {
                waits.iter().find_map(|w| {
                    match state_of(w) {
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
                })
            } else {
                None
            };
            // What the run is built from, recorded when it leaves its wait.
            let satisfied: Vec<UpstreamRun> = if waits.is_empty() {
                c.needed
                    .iter()
                    .filter_map(|w| {
                        states
                            .get(&(w.workflow.as_str(), w.window_start))
                            .map(|r| UpstreamRun {
                                workflow: w.workflow.clone(),
                                window_start: w.window_start,
                                window_end: w.window_end,
                                run_id: r.run_id,
                            })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            results.push((c.id, waits, unsatisfied, satisfied));
        }
        let mut checked = HashSet::with_capacity(results.len());
        let mut st = inner.lock();
        for (id, waits, unsatisfied, satisfied) in results {
            let Some(run) = st.runs.get_mut(&id) else {
                continue;
            };
            // Changed while the states were read (cancelled, say): its
            // next pass decides.
            if !matches!(run.state, RunState::Queued | RunState::WaitingUpstream) {
                continue;
            }
            if let Some(error) = unsatisfied {
                if run.apply(RunEvent::UpstreamUnsatisfied, now).is_ok() {
                    for t in &mut run.tasks {
                        if t.apply(TaskEvent::UpstreamFailed).is_ok() {
                            t.last_error = Some(error.clone());
                        }
                    }
                    run.waiting_on = waits;
                    tracing::info!(run = id, %error, "backfill run failed on its upstream");
                    st.end_run(id, now);
                    report.changed += 1;
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
                if !satisfied.is_empty() {
                    run.provenance.upstream = satisfied;
                }
                if (run.state, run.waiting_on.len()) != before {
                    st.dirty.insert(id);
                    report.changed += 1;
                }
                checked.insert(id);
            }
        }
        Ok(checked)
    }
}

/// The latest run (id and state) of each upstream window in `needed` (which lists
/// each dependency's windows in time order): one range read per run of
/// consecutive windows of one workflow. Errors propagate: a read that
/// failed is not "never ran".
fn upstream_states<'a>(
    inner: &Inner,
    tenant: &str,
    needed: &'a [crate::run::UpstreamWait],
) -> Result<HashMap<(&'a str, i64), WindowRecord>, EngineError> {
    let mut states = HashMap::with_capacity(needed.len());
    for group in needed.chunk_by(|a, b| a.workflow == b.workflow && a.window_start < b.window_start)
    {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let wf = first.workflow.as_str();
        for (start, rec) in inner.store.windows(
            tenant,
            wf,
            first.window_start,
            last.window_start.saturating_add(1),
            usize::MAX,
        )? {
            states.insert((wf, start), rec);
        }
    }
    Ok(states)
}
