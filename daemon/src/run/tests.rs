use super::*;
use crate::workflow::{Catalog, PluginRef, RawWorkflow};

struct AnyPlugin;
impl Catalog for AnyPlugin {
    fn has_plugin(&self, _: &PluginRef) -> bool {
        true
    }
    fn upstreams(&self, _: &str) -> Option<Vec<String>> {
        Some(vec![])
    }
}

/// a -> b -> d, a -> c (diamond-ish), with the given failure strategy.
fn def(strategy: &str) -> WorkflowDef {
    let toml = format!(
        r#"
name = "wf"
failure_strategy = "{strategy}"
[schedule]
cron = "@hourly"
start = "2024-01-01"
[[tasks]]
name = "a"
plugin = "p"
[[tasks]]
name = "b"
plugin = "p"
depends_on = ["a"]
[[tasks]]
name = "c"
plugin = "p"
depends_on = ["a"]
[[tasks]]
name = "d"
plugin = "p"
depends_on = ["b"]
"#
    );
    RawWorkflow::from_toml(&toml)
        .unwrap()
        .validate(&AnyPlugin)
        .unwrap()
}

fn started(def: &WorkflowDef) -> Run {
    let mut run = Run::new(
        1,
        "t",
        def,
        1,
        Window { start: 0, end: 10 },
        Trigger::Scheduled,
        0,
    );
    run.apply(RunEvent::Start, 0).unwrap();
    run
}

fn names(run: &Run, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| run.tasks[i].name.clone()).collect()
}

fn finish(run: &mut Run, name: &str, event: TaskEvent) {
    let i = run.task_index(name).unwrap();
    run.tasks[i].apply(TaskEvent::Start).unwrap();
    run.tasks[i].apply(event).unwrap();
}

fn states(run: &Run) -> Vec<&'static str> {
    run.tasks.iter().map(|t| t.state.as_str()).collect()
}

#[test]
fn tasks_dispatch_in_dependency_order_and_the_run_succeeds() {
    let d = def("stop");
    let mut run = started(&d);
    let adv = run.advance(&d, 0).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["a"]);
    finish(&mut run, "a", TaskEvent::Succeed);
    let adv = run.advance(&d, 0).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["b", "c"]);
    finish(&mut run, "b", TaskEvent::Succeed);
    finish(&mut run, "c", TaskEvent::Succeed);
    let adv = run.advance(&d, 0).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["d"]);
    finish(&mut run, "d", TaskEvent::Succeed);
    let adv = run.advance(&d, 5).unwrap();
    assert_eq!(adv.finished, Some(RunState::Succeeded));
    assert_eq!(run.ended_ms, Some(5));
}

#[test]
fn stop_strategy_cancels_the_rest() {
    let d = def("stop");
    let mut run = started(&d);
    finish(&mut run, "a", TaskEvent::Succeed);
    finish(&mut run, "b", TaskEvent::Fail { retry: false });
    let adv = run.advance(&d, 0).unwrap();
    assert_eq!(adv.finished, Some(RunState::Failed));
    assert_eq!(
        states(&run),
        ["succeeded", "failed", "cancelled", "cancelled"]
    );
}

#[test]
fn continue_strategy_runs_independent_branches() {
    let d = def("continue");
    let mut run = started(&d);
    finish(&mut run, "a", TaskEvent::Succeed);
    finish(&mut run, "b", TaskEvent::Fail { retry: false });
    let adv = run.advance(&d, 0).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["c"]);
    assert_eq!(
        states(&run),
        ["succeeded", "failed", "pending", "upstream_failed"]
    );
    finish(&mut run, "c", TaskEvent::Succeed);
    assert_eq!(run.advance(&d, 0).unwrap().finished, Some(RunState::Failed));
}

#[test]
fn retrying_tasks_wait_for_their_backoff() {
    let d = def("stop");
    let mut run = started(&d);
    finish(&mut run, "a", TaskEvent::Fail { retry: true });
    run.tasks[0].retry_at = Some(100);
    let adv = run.advance(&d, 99).unwrap();
    assert!(adv.dispatch.is_empty());
    assert_eq!(adv.next_retry_at, Some(100));
    let adv = run.advance(&d, 100).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["a"]);
}

#[test]
fn retry_from_failed_keeps_succeeded_tasks() {
    let d = def("stop");
    let mut run = started(&d);
    finish(&mut run, "a", TaskEvent::Succeed);
    finish(&mut run, "b", TaskEvent::Fail { retry: false });
    run.advance(&d, 0).unwrap();
    assert_eq!(run.state, RunState::Failed);
    run.reset_failed(10).unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(states(&run), ["succeeded", "pending", "pending", "pending"]);
    run.apply(RunEvent::Start, 11).unwrap();
    let adv = run.advance(&d, 11).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["b", "c"], "a is not re-run");
}

#[test]
fn skipped_tasks_satisfy_dependents() {
    let d = def("stop");
    let mut run = started(&d);
    run.tasks[0].apply(TaskEvent::Skip).unwrap();
    let adv = run.advance(&d, 0).unwrap();
    assert_eq!(names(&run, &adv.dispatch), ["b", "c"]);
}

#[test]
fn a_run_stored_without_provenance_still_loads() {
    let def = def("continue");
    let run = started(&def);
    let mut v = serde_json::to_value(&run).unwrap();
    v.as_object_mut().unwrap().remove("provenance");
    let loaded: Run = serde_json::from_value(v).unwrap();
    assert_eq!(loaded.provenance, Provenance::default());
    assert_eq!(loaded.provenance.cause, Cause::Unrecorded);
}
