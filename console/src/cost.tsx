// What a backfill costs: a dry run's estimate (per workflow, what each rests
// on) and, on the backfill page, the estimate it was created with against
// what it spent, with the reason a budget paused it and the basis of each
// task's figures.
import type { components } from "./generated/api";
import { duration } from "./time";

type Schemas = components["schemas"];
type Range = Schemas["EstimateRange"];

const count = (n: number) => n.toLocaleString("en-US");

function range(r: Range, ms = false): string {
  const f = ms ? duration : count;
  return `${f(r.expected)} (${f(r.low)}–${f(r.high)})`;
}

export function EstimateView({ estimate }: { estimate: Schemas["Estimate"] }) {
  const t = estimate.total;
  return (
    <section class="estimate" aria-label="Estimate">
      <h2>Estimate</h2>
      <p role="status" class="estimate-total">
        Wall time {range(t.wall_ms, true)}, task-runs {range(t.task_runs)}, fuel {range(t.fuel)},
        bytes {range(t.bytes)}
        {estimate.truncated && " (covers the first windows of the plan)"}.
      </p>
      <div class="table-wrap">
        <table class="list estimate-table">
          <thead>
            <tr><th scope="col">Workflow</th><th scope="col">Runs</th><th scope="col">Wall time</th><th scope="col">Fuel</th><th scope="col">Bytes</th><th scope="col">Rests on</th></tr>
          </thead>
          <tbody>
            {estimate.workflows.map((w) => (
              <tr key={w.workflow}>
                <td>{w.workflow} v{w.version}</td>
                <td>{w.runs} ×{w.parallelism}</td>
                <td>{range(w.wall_ms, true)}</td>
                <td>{range(w.fuel)}</td>
                <td>{range(w.bytes)}</td>
                <td class="small">
                  runs: {w.run_basis} ({w.run_samples}); {w.tasks.map((t) => `${t.task}: ${t.basis} (${t.samples})`).join(", ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function CostView({ status }: { status: Schemas["BackfillStatus"] }) {
  const { estimate: e, actual: a, backfill: b } = status;
  const budget = b.request.budget;
  const rows: [string, number, Range | undefined, boolean, number | null | undefined][] = [
    ["Wall time", a.wall_ms, e?.wall_ms, true, budget?.max_wall_seconds ? budget.max_wall_seconds * 1000 : null],
    ["Task-runs", a.task_runs, e?.task_runs, false, null],
    ["Fuel", a.fuel, e?.fuel, false, budget?.max_fuel],
    ["Bytes written", a.bytes, e?.bytes, false, budget?.max_bytes],
  ];
  return (
    <section aria-label="Cost" class="cost">
      <h2>Estimate and actual</h2>
      {b.pause_reason && (
        <p class="notice pause-reason" role="status">Paused: {b.pause_reason}</p>
      )}
      <table class="list cost-table">
        <thead>
          <tr><th scope="col"></th><th scope="col">Actual</th><th scope="col">Estimate</th><th scope="col">Budget</th></tr>
        </thead>
        <tbody>
          {rows.map(([label, actual, est, ms, limit]) => (
            <tr key={label} data-figure={label}>
              <th scope="row">{label}</th>
              <td class="cost-actual">{ms ? duration(actual) : count(actual)}</td>
              <td>{est ? range(est, ms) : "—"}</td>
              <td>{limit ? (ms ? duration(limit) : count(limit)) + (b.budget_lifted ? " (lifted)" : "") : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {status.estimate_workflows.length > 0 && <TaskBasis workflows={status.estimate_workflows} />}
    </section>
  );
}

// Per task, what the stored estimate rests on: the level of history
// (version, plugin or default), its samples, and one attempt's ranges.
function TaskBasis({ workflows }: { workflows: Schemas["WorkflowEstimate"][] }) {
  return (
    <div class="table-wrap">
      <table class="list estimate-basis">
        <caption>What the estimate rests on, per task (one attempt)</caption>
        <thead>
          <tr>
            <th scope="col">Task</th><th scope="col">Basis</th><th scope="col">Samples</th>
            <th scope="col">Duration</th><th scope="col">Fuel</th><th scope="col">Bytes</th>
          </tr>
        </thead>
        <tbody>
          {workflows.flatMap((w) =>
            w.tasks.map((t) => (
              <tr key={`${w.workflow}/${t.task}`} data-task={`${w.workflow}/${t.task}`}>
                <th scope="row">{w.workflow} v{w.version} / {t.task}</th>
                <td class="basis">{t.basis}</td>
                <td class="samples">{t.samples}</td>
                <td>{range(t.duration_ms, true)}</td>
                <td>{range(t.fuel)}</td>
                <td>{range(t.bytes)}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </div>
  );
}
