// A backfill: live progress (polled), when it may run (allowed hours,
// start-at) and what it waits for, its state strip per workflow, failed
// windows with their errors, pause/resume/cancel/retry-failed, and the
// consistency check of the object-storage outputs its windows published.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { CostView } from "../cost";
import { href } from "../router";
import { StateStrip } from "../strip";
import { duration } from "../time";
import { Action, ErrorBox, Loading, More, Page, State, Time, useLoad, usePaged } from "../ui";
import { describeSelection, repairOrigin } from "./backfills";

export function BackfillPage({ id }: { id: number }) {
  const [live, setLive] = useState(true);
  const bf = useLoad(() => api.backfill(id), [id], live ? 1000 : 5000);
  const zones = useLoad(
    async () => Object.fromEntries((await api.allWorkflows()).map((w) => [w.name, w.timezone])),
    [id],
  );
  const b = bf.data?.backfill;
  const ended = b ? ["succeeded", "failed", "cancelled"].includes(b.state) : false;
  useEffect(() => setLive(!ended), [ended]);
  if (!bf.data || !b) {
    return (
      <Page title={`Backfill #${id}`}>
        <ErrorBox error={bf.error} />
        {!bf.error && <Loading what="the backfill" />}
      </Page>
    );
  }
  const p = bf.data.progress;
  const tz = (w: string) => zones.data?.[w] ?? "UTC";
  // The estimate covers the selected workflow; stages add theirs as they appear.
  const total = (p.estimated_total ?? 0) + b.stages.reduce((n, s) => n + s.window_starts_ms.length, 0);
  const pct = total > 0 ? Math.min(100, (100 * p.done) / total) : 0;
  const workflows = [
    { name: b.request.workflow, windows: p.estimated_total ?? 300 },
    ...b.stages.map((s) => ({ name: s.workflow, windows: s.window_starts_ms.length })),
  ];
  return (
    <Page
      title={`Backfill #${b.id}: ${b.request.workflow}`}
      actions={
        <>
          <Action label="Pause" disabled={b.state !== "running"} run={() => api.backfillAction(id, "pause")} done={bf.reload} ok="Paused" />
          <Action label="Resume" disabled={b.state !== "paused"} run={() => api.backfillAction(id, "resume")} done={bf.reload} ok="Resumed" />
          <Action
            label="Cancel"
            kind="danger"
            disabled={ended}
            confirm={`Cancel backfill #${b.id}? Windows not started yet will not run.`}
            run={() => api.backfillAction(id, "cancel")}
            done={bf.reload}
            ok="Cancelled"
          />
          <Action
            label="Retry failed"
            disabled={!ended || b.failed === 0}
            run={() => api.backfillAction(id, "retry-failed")}
            done={bf.reload}
            ok="Retrying the failed windows"
          />
        </>
      }
    >
      <ErrorBox error={bf.error} />
      <dl class="facts">
        <dt>State</dt>
        <dd class="backfill-state"><State state={b.state} /></dd>
        {b.gap_repair && (
          <>
            <dt>Gap repair</dt>
            <dd class="gap-repair">{repairOrigin(b.gap_repair)}</dd>
          </>
        )}
        <dt>Windows</dt>
        <dd>{describeSelection(b)}</dd>
        <dt>Options</dt>
        <dd class="small">
          {b.request.mode}
          {b.request.mode === "parallel" && b.request.parallelism ? ` ×${b.request.parallelism}` : ""}, {b.request.order}, re-run {b.request.rerun},
          downstream {b.request.downstream ?? "none"}, priority {b.request.priority}, version {b.version}
          {b.request.from_task ? `, from task ${b.request.from_task}` : ""}
        </dd>
        <dt>When</dt>
        <dd class="backfill-calendar">
          {b.request.allowed_hours
            ? `allowed hours ${b.request.allowed_hours.spans.join("; ")} (${b.request.allowed_hours.timezone})`
            : "any time"}
          {b.request.start_at && <>, from <Time ms={Date.parse(b.request.start_at)} tz={b.request.allowed_hours?.timezone ?? "UTC"} /></>}
        </dd>
        <dt>Created</dt>
        <dd><Time ms={b.created_ms} tz="UTC" /></dd>
        {b.stages.length > 0 && (
          <>
            <dt>Stage</dt>
            <dd>{b.stage === 0 ? b.request.workflow : b.stages[b.stage - 1]?.workflow} ({b.stage + 1} of {b.stages.length + 1})</dd>
          </>
        )}
      </dl>
      <section aria-label="Progress" class="progress">
        <progress max={100} value={pct} aria-label="Windows done" />
        <ul class="counts">
          <li><strong class="count-done">{p.done}</strong> / {total || "?"} done</li>
          <li><State state="running" /> <strong class="count-running">{p.running}</strong></li>
          <li><State state="succeeded" /> <strong class="count-succeeded">{p.succeeded}</strong></li>
          <li><State state="failed" /> <strong class="count-failed">{p.failed}</strong></li>
          <li><State state="skipped" /> <strong>{p.skipped}</strong></li>
          <li><State state="cancelled" /> <strong>{p.cancelled}</strong></li>
          <li>{p.windows_per_second.toFixed(1)} windows/s</li>
          <li>ETA {p.eta_seconds === null ? "—" : duration(Math.round(p.eta_seconds * 1000))}</li>
        </ul>
        {/* Outside its hours or before its start-at the server says
            `waiting: ... until ...`; other throttles say why. */}
        {p.throttled && (
          <p class="notice backfill-throttled" role="status">
            {p.throttled.startsWith("waiting:") ? p.throttled : `Throttled: ${p.throttled}`}
          </p>
        )}
      </section>
      <CostView status={bf.data} />
      <h2>State strip</h2>
      {workflows.map((w) => (
        <StateStrip
          key={w.name}
          id={id}
          workflow={w.name}
          tz={tz(w.name)}
          live={!ended}
          windows={w.windows}
          refresh={b.state}
        />
      ))}
      <FailedWindows id={id} tz={tz} version={`${b.state}-${b.failed}`} />
      <VerifyOutputs id={id} tz={tz} />
    </Page>
  );
}

type Verification = Awaited<ReturnType<typeof api.verifyBackfill>>;

// Re-reads every published output of the backfill's windows on demand.
function VerifyOutputs({ id, tz }: { id: number; tz: (w: string) => string }) {
  const [result, setResult] = useState<Verification | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      setResult(await api.verifyBackfill(id));
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };
  const bad = result?.checks.filter((c) => !c.consistent) ?? [];
  return (
    <section aria-label="Output consistency" class="verify">
      <h2>Object-storage outputs</h2>
      <button type="button" onClick={run} disabled={busy}>
        {busy ? "Verifying…" : "Verify outputs"}
      </button>
      <ErrorBox error={error} />
      {result && (
        <p class="verify-summary" role="status">
          {result.windows} windows, {result.outputs} outputs: {result.consistent} consistent,{" "}
          <strong>{result.inconsistent}</strong> inconsistent
        </p>
      )}
      {bad.length > 0 && (
        <table class="verify-problems">
          <thead>
            <tr><th>Window</th><th>Task</th><th>Container</th><th>Problem</th></tr>
          </thead>
          <tbody>
            {bad.map((c) => (
              <tr key={`${c.workflow}/${c.task}/${c.connection}/${c.window_start_ms}`}>
                <td><Time ms={c.window_start_ms} tz={tz(c.workflow)} /></td>
                <td>{c.workflow}/{c.task}</td>
                <td>{c.connection}</td>
                <td>
                  {[
                    c.manifest !== "current" ? `manifest ${c.manifest}` : "",
                    c.missing.length ? `missing: ${c.missing.join(", ")}` : "",
                    c.size_mismatch.length ? `size differs: ${c.size_mismatch.join(", ")}` : "",
                    c.checksum_mismatch.length ? `checksum differs: ${c.checksum_mismatch.join(", ")}` : "",
                    c.extra.length ? `extra: ${c.extra.join(", ")}` : "",
                  ].filter(Boolean).join("; ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function FailedWindows({ id, tz, version }: { id: number; tz: (w: string) => string; version: string }) {
  const first = usePaged(
    (after: { after: number; after_workflow: string } | undefined) =>
      api
        .backfillWindows(id, { state: "failed", limit: 50, ...after })
        .then((p) => ({ items: p.windows, next: p.next })),
    [id, version],
  );
  const rows = first.rows;
  return (
    <section aria-label="Failed windows">
      <h2>Failed windows</h2>
      <ErrorBox error={first.error} />
      {first.data && rows.length === 0 && <p class="muted">None.</p>}
      {rows.length > 0 && (
        <table class="list failed-windows">
          <thead>
            <tr><th scope="col">Workflow</th><th scope="col">Window</th><th scope="col">Run</th><th scope="col">Error</th></tr>
          </thead>
          <tbody>
            {rows.map((w) => (
              <tr key={`${w.workflow}-${w.window_start_ms}`}>
                <td>{w.workflow}</td>
                <td><Time ms={w.window_start_ms} tz={tz(w.workflow)} /></td>
                <td>{w.run_id !== null ? <a href={href("runs", w.run_id)}>#{w.run_id}</a> : "—"}</td>
                <td class="window-error">{w.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <More more={first.more} />
    </section>
  );
}
