// A run: why it exists (provenance), its tasks as a Gantt chart of attempts
// over time, retry and cancel.
import { useEffect, useState } from "preact/hooks";
import { api, type Attempt, type Run } from "../api";
import { href } from "../router";
import { duration, inZone, utc } from "../time";
import { Action, ErrorBox, Loading, Page, State, Time, useLoad } from "../ui";
import { AttemptList } from "./grid";
import { ProvenanceView } from "../provenance";

const TERMINAL = ["succeeded", "failed", "cancelled"];

export function RunPage({ id }: { id: number }) {
  const [ended, setEnded] = useState(false);
  const run = useLoad(() => api.run(id), [id], ended ? undefined : 2000);
  const state = run.data?.run.state;
  useEffect(() => setEnded(!!state && TERMINAL.includes(state)), [state]);
  const wf = useLoad(
    () => (run.data ? api.workflow(run.data.run.workflow, run.data.run.version) : Promise.resolve(undefined)),
    [run.data?.run.workflow, run.data?.run.version],
  );
  if (!run.data) {
    return (
      <Page title={`Run #${id}`}>
        <ErrorBox error={run.error} />
        {!run.error && <Loading what="the run" />}
      </Page>
    );
  }
  const r = run.data.run;
  const tz = wf.data?.definition.schedule.timezone ?? "UTC";
  return (
    <Page
      title={`Run #${r.id} of ${r.workflow}`}
      actions={
        <>
          <a class="button" href={href("workflows", r.workflow, "grid")}>Grid</a>
          <Action
            label="Retry from failed"
            disabled={r.state !== "failed" && r.state !== "cancelled"}
            run={() => api.retryRun(r.id)}
            done={run.reload}
            ok="Retrying from the failed tasks"
          />
          <Action
            label="Cancel"
            kind="danger"
            disabled={ended}
            run={() => api.cancelRun(r.id, false)}
            done={run.reload}
            ok="Cancelled"
          />
        </>
      }
    >
      <ErrorBox error={run.error} />
      <dl class="facts">
        <dt>State</dt>
        <dd><State state={r.state} /></dd>
        <dt>Window</dt>
        <dd><Time ms={r.window_start_ms} tz={tz} /> – <Time ms={r.window_end_ms} tz={tz} /></dd>
        <dt>Trigger</dt>
        <dd>{r.trigger}</dd>
        <dt>Version</dt>
        <dd>{r.version}</dd>
        <dt>Started</dt>
        <dd><Time ms={r.started_ms} tz={tz} /></dd>
        <dt>Ended</dt>
        <dd><Time ms={r.ended_ms} tz={tz} /></dd>
      </dl>
      <ProvenanceView id={r.id} tz={tz} state={r.state} />
      <h2>Attempts over time</h2>
      <Gantt run={r} attempts={run.data.attempts} tz={tz} />
      <h2>Tasks</h2>
      <table class="list">
        <thead>
          <tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Last error</th></tr>
        </thead>
        <tbody>
          {r.tasks.map((t) => (
            <tr key={t.name} data-task={t.name}>
              <th scope="row">{t.name}</th>
              <td><State state={t.state} /></td>
              <td>{t.attempts}</td>
              <td class="task-error">{t.last_error ?? <span class="muted">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Attempt details</h2>
      <AttemptList attempts={[...run.data.attempts].sort((a, b) => a.started_ms - b.started_ms)} tz={tz} />
    </Page>
  );
}

function Gantt({ run, attempts, tz }: { run: Run; attempts: Attempt[]; tz: string }) {
  if (attempts.length === 0) return <p class="muted">No attempts yet.</p>;
  const now = Date.now();
  const t0 = Math.min(...attempts.map((a) => a.started_ms));
  const t1 = Math.max(t0 + 1, ...attempts.map((a) => a.ended_ms ?? now));
  const rows = run.tasks.map((t) => t.name);
  for (const a of attempts) if (!rows.includes(a.task)) rows.push(a.task);
  const W = 900;
  const LABEL = 130;
  const ROW = 26;
  const H = rows.length * ROW + 28;
  const x = (t: number) => LABEL + ((t - t0) / (t1 - t0)) * (W - LABEL - 10);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => t0 + f * (t1 - t0));
  return (
    <div class="gantt-wrap">
      <svg class="gantt" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Gantt chart of ${attempts.length} attempts over ${duration(t1 - t0)}`}>
        {rows.map((name, i) => (
          <text key={name} x={4} y={i * ROW + 17} class="gantt-label">{name}</text>
        ))}
        {ticks.map((t, i) => (
          <g key={i}>
            <line x1={x(t)} x2={x(t)} y1={0} y2={rows.length * ROW} class="gantt-tick" />
            <text x={x(t)} y={H - 8} text-anchor={i === 0 ? "start" : i === 4 ? "end" : "middle"} class="gantt-axis">
              +{duration(Math.round(t - t0))}
            </text>
          </g>
        ))}
        {attempts.map((a) => {
          const row = rows.indexOf(a.task);
          const end = a.ended_ms ?? now;
          const st = a.ended_ms === null ? "running" : a.error_kind ? "failed" : "succeeded";
          return (
            <rect
              key={`${a.task}-${a.attempt}`}
              class={`gantt-bar s-${st}`}
              x={x(a.started_ms)}
              y={row * ROW + 5}
              width={Math.max(3, x(end) - x(a.started_ms))}
              height={ROW - 10}
              rx={3}
            >
              <title>
                {`${a.task} attempt ${a.attempt}: ${st}${a.error_kind ? ` (${a.error_kind})` : ""}, ${duration(end - a.started_ms)}, from ${inZone(a.started_ms, tz)} (${utc(a.started_ms)} UTC)`}
              </title>
            </rect>
          );
        })}
      </svg>
    </div>
  );
}
