// The backfill launcher: every option of the backfill API, and Preview (the
// dry run) showing the whole plan before anything starts, with when it may
// run (allowed hours, start-at) and whether it would wait. Confirm is only
// offered for exactly the request that was previewed.
import { useMemo, useState } from "preact/hooks";
import { api, type BackfillRequest, type Estimate, type Plan } from "../api";
import { EstimateView } from "../cost";
import { go, href } from "../router";
import { zonedInstant } from "../time";
import { ErrorBox, Loading, Page, Time, useLoad } from "../ui";

const PLAN_PAGE = 500;

export function Launcher({ query }: { query: URLSearchParams }) {
  const workflows = useLoad(() => api.allWorkflows(), []);
  const [workflow, setWorkflow] = useState(query.get("workflow") ?? "");
  const wfName = workflow || workflows.data?.[0]?.name || "";
  const versions = useLoad(() => (wfName ? api.allVersions(wfName) : Promise.resolve([])), [wfName]);
  const current = versions.data?.at(-1);
  const tz = workflows.data?.find((w) => w.name === wfName)?.timezone ?? "UTC";

  const [kind, setKind] = useState<"range" | "dates">("range");
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [dates, setDates] = useState<string[]>([]);
  const [pick, setPick] = useState("");
  const [mode, setMode] = useState<"parallel" | "serial">("parallel");
  const [parallelism, setParallelism] = useState("4");
  const [order, setOrder] = useState<"asc" | "desc">("asc");
  const [rerun, setRerun] = useState<"missing" | "failed" | "all">("missing");
  const [fromTask, setFromTask] = useState("");
  const [downstream, setDownstream] = useState<"none" | "direct" | "transitive">("none");
  const [include, setInclude] = useState("");
  const [exclude, setExclude] = useState("");
  const [priority, setPriority] = useState<"low" | "normal" | "high">("low");
  const [version, setVersion] = useState("");
  const [maxFailed, setMaxFailed] = useState("");
  const [overlap, setOverlap] = useState<"wait" | "skip" | "cancel_other">("wait");
  const [maxWall, setMaxWall] = useState("");
  const [maxFuel, setMaxFuel] = useState("");
  const [maxBytes, setMaxBytes] = useState("");
  const [hoursZone, setHoursZone] = useState("");
  const [spans, setSpans] = useState("");
  const [startAt, setStartAt] = useState("");

  const request: BackfillRequest = useMemo(() => {
    const r: BackfillRequest = { workflow: wfName, mode, order, rerun, downstream, priority, overlap };
    if (kind === "range") {
      r.start = start;
      r.end = end;
    } else {
      r.dates = dates;
    }
    if (mode === "parallel" && parallelism) r.parallelism = Number(parallelism);
    if (fromTask) r.from_task = fromTask;
    // Comma-separated names; the server refuses unknown or unreachable ones.
    const names = (v: string) => v.split(",").map((n) => n.trim()).filter((n) => n);
    if (downstream !== "none" && names(include).length) r.downstream_include = names(include);
    if (downstream !== "none" && names(exclude).length) r.downstream_exclude = names(exclude);
    if (version) r.version = Number(version);
    if (maxFailed) r.max_failed_windows = Number(maxFailed);
    // A budget only when a limit is given; the server refuses zero or less.
    if (maxWall || maxFuel || maxBytes) {
      r.budget = {};
      if (maxWall) r.budget.max_wall_seconds = Number(maxWall);
      if (maxFuel) r.budget.max_fuel = Number(maxFuel);
      if (maxBytes) r.budget.max_bytes = Number(maxBytes);
    }
    // One span per line (a span's days may hold commas); the zone defaults
    // to the workflow's. The server refuses a calendar with no hour open.
    const zone = hoursZone.trim() || tz;
    const lines = spans.split("\n").map((l) => l.trim()).filter((l) => l);
    if (lines.length) r.allowed_hours = { timezone: zone, spans: lines };
    // Read in the same zone, sent as a UTC instant.
    if (startAt) r.start_at = new Date(zonedInstant(startAt, zone)).toISOString();
    return r;
  }, [wfName, tz, kind, start, end, dates, mode, parallelism, order, rerun, fromTask, downstream, include, exclude, priority, version, maxFailed, overlap, maxWall, maxFuel, maxBytes, hoursZone, spans, startAt]);
  const key = JSON.stringify(request);

  const [plan, setPlan] = useState<{ key: string; plan: Plan; estimate: Estimate; waiting: string | null; request: BackfillRequest }>();
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  const [shown, setShown] = useState(PLAN_PAGE);

  const preview = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setPlan(undefined);
    try {
      const res = await api.dryRun(request);
      setPlan({ key, plan: res.plan, estimate: res.estimate, waiting: res.waiting, request });
      setShown(PLAN_PAGE);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const confirmStart = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const res = await api.createBackfill(request);
      go(href("backfills", res.backfill.id));
    } catch (err) {
      setError(err as Error);
      setBusy(false);
    }
  };

  const tasks = (versions.data?.find((v) => String(v.version) === version) ?? current)?.definition.tasks ?? [];
  const stale = plan && plan.key !== key;
  const set = (f: (v: string) => void) => (e: Event) => f((e.target as HTMLInputElement).value);

  if (workflows.error) return <Page title="New backfill"><ErrorBox error={workflows.error} /></Page>;
  if (!workflows.data) return <Page title="New backfill"><Loading what="workflows" /></Page>;
  return (
    <Page title="New backfill">
      <form class="launcher" onSubmit={preview}>
        <fieldset>
          <legend>What to repair</legend>
          <label for="bf-workflow">Workflow</label>
          <select id="bf-workflow" value={wfName} onChange={set((v) => { setWorkflow(v); setFromTask(""); setVersion(""); })}>
            {workflows.data.map((w) => <option key={w.name} value={w.name}>{w.name}</option>)}
          </select>
          <div class="radios" role="radiogroup" aria-label="Windows">
            <label><input type="radio" name="kind" checked={kind === "range"} onChange={() => setKind("range")} /> Date range</label>
            <label><input type="radio" name="kind" checked={kind === "dates"} onChange={() => setKind("dates")} /> List of dates</label>
          </div>
          {kind === "range" ? (
            <div class="pair">
              <span>
                <label for="bf-start">Start date</label>
                <input id="bf-start" type="date" required value={start} onInput={set(setStart)} />
              </span>
              <span>
                <label for="bf-end">End date (exclusive)</label>
                <input id="bf-end" type="date" required value={end} onInput={set(setEnd)} />
              </span>
            </div>
          ) : (
            <div>
              <label for="bf-date">Date</label>
              <span class="pair">
                <input id="bf-date" type="date" value={pick} onInput={set(setPick)} />
                <button type="button" disabled={!pick} onClick={() => { if (pick && !dates.includes(pick)) setDates([...dates, pick].sort()); setPick(""); }}>
                  Add date
                </button>
              </span>
              <ul class="chips" aria-label="Selected dates">
                {dates.map((d) => (
                  <li key={d} class="chip">
                    {d}{" "}
                    <button type="button" aria-label={`Remove ${d}`} onClick={() => setDates(dates.filter((x) => x !== d))}>×</button>
                  </li>
                ))}
              </ul>
            </div>
          )}
          <p class="muted small">Dates are read in the workflow's time zone ({tz}).</p>
        </fieldset>
        <fieldset>
          <legend>How</legend>
          <label for="bf-mode">Mode</label>
          <select id="bf-mode" value={mode} onChange={set((v) => setMode(v as "parallel" | "serial"))}>
            <option value="parallel">parallel</option>
            <option value="serial">serial (one window at a time)</option>
          </select>
          <label for="bf-parallelism">Parallelism</label>
          <input id="bf-parallelism" type="number" min={1} disabled={mode === "serial"} value={parallelism} onInput={set(setParallelism)} />
          <label for="bf-order">Order</label>
          <select id="bf-order" value={order} onChange={set((v) => setOrder(v as "asc" | "desc"))}>
            <option value="asc">oldest first</option>
            <option value="desc">newest first</option>
          </select>
          <label for="bf-rerun">Re-run</label>
          <select id="bf-rerun" value={rerun} onChange={set((v) => setRerun(v as "missing" | "failed" | "all"))}>
            <option value="missing">missing: windows that never succeeded</option>
            <option value="failed">failed: windows whose latest run failed</option>
            <option value="all">all: every window, even succeeded ones</option>
          </select>
          <label for="bf-from-task">From task</label>
          <select id="bf-from-task" value={fromTask} onChange={set(setFromTask)}>
            <option value="">all tasks</option>
            {tasks.map((t) => <option key={t.name} value={t.name}>{t.name} and after</option>)}
          </select>
          <label for="bf-downstream">Downstream workflows</label>
          <select id="bf-downstream" value={downstream} onChange={set((v) => setDownstream(v as "none" | "direct" | "transitive"))}>
            <option value="none">none</option>
            <option value="direct">direct dependents</option>
            <option value="transitive">everything downstream</option>
          </select>
          <label for="bf-include">Only these downstream (comma-separated)</label>
          <input id="bf-include" placeholder="all the mode reaches" disabled={downstream === "none"} value={include} onInput={set(setInclude)} />
          <label for="bf-exclude">Never these downstream (comma-separated)</label>
          <input id="bf-exclude" placeholder="none" disabled={downstream === "none"} value={exclude} onInput={set(setExclude)} />
        </fieldset>
        <fieldset>
          <legend>Against live runs</legend>
          <label for="bf-priority">Priority</label>
          <select id="bf-priority" value={priority} onChange={set((v) => setPriority(v as "low" | "normal" | "high"))}>
            <option value="low">low (below live runs)</option>
            <option value="normal">normal</option>
            <option value="high">high (urgent repair, goes first)</option>
          </select>
          <label for="bf-version">Workflow version</label>
          <select id="bf-version" value={version} onChange={set((v) => { setVersion(v); setFromTask(""); })}>
            <option value="">current ({current?.version ?? "…"})</option>
            {(versions.data ?? []).map((v) => <option key={v.version} value={v.version}>version {v.version}</option>)}
          </select>
          <label for="bf-max-failed">Stop after failed windows</label>
          <input id="bf-max-failed" type="number" min={1} placeholder="never" value={maxFailed} onInput={set(setMaxFailed)} />
          <label for="bf-overlap">A window already running</label>
          <select id="bf-overlap" value={overlap} onChange={set((v) => setOverlap(v as "wait" | "skip" | "cancel_other"))}>
            <option value="wait">wait for it</option>
            <option value="skip">skip the window</option>
            <option value="cancel_other">cancel the other run</option>
          </select>
          <label for="bf-max-wall">Budget: max wall time (seconds)</label>
          <input id="bf-max-wall" type="number" placeholder="no limit" value={maxWall} onInput={set(setMaxWall)} />
          <label for="bf-max-fuel">Budget: max fuel</label>
          <input id="bf-max-fuel" type="number" placeholder="no limit" value={maxFuel} onInput={set(setMaxFuel)} />
          <label for="bf-max-bytes">Budget: max bytes written</label>
          <input id="bf-max-bytes" type="number" placeholder="no limit" value={maxBytes} onInput={set(setMaxBytes)} />
        </fieldset>
        <fieldset>
          <legend>When it may run</legend>
          <label for="bf-spans">Allowed hours (one span per line)</label>
          <textarea id="bf-spans" rows={2} placeholder={"any time, e.g.\nMon-Fri 20:00-06:00"} value={spans} onInput={set(setSpans)} />
          <label for="bf-hours-zone">Allowed hours: time zone</label>
          <input id="bf-hours-zone" placeholder={tz} value={hoursZone} onInput={set(setHoursZone)} />
          <label for="bf-start-at">Start at</label>
          <input id="bf-start-at" type="datetime-local" value={startAt} onInput={set(setStartAt)} />
          <p class="muted small">
            Spans are <code>[DAYS ]HH:MM-HH:MM</code> (days <code>Mon</code>..<code>Sun</code>, ranges like <code>Mon-Fri</code>;
            none for every day); one ending before it starts runs past midnight. Outside them no new window starts.
            Start-at is read in the same zone ({hoursZone.trim() || tz}).
          </p>
        </fieldset>
        <div class="buttons">
          <button type="submit" disabled={busy}>Preview</button>
          <button type="button" class="primary" disabled={busy || !plan || stale} onClick={confirmStart}>
            Confirm and start
          </button>
          {stale && <span class="muted" role="status">The form changed: preview again before confirming.</span>}
        </div>
      </form>
      <ErrorBox error={error} />
      {plan && !stale && <WhenView request={plan.request} waiting={plan.waiting} />}
      {plan && !stale && <EstimateView estimate={plan.estimate} />}
      {plan && !stale && <PlanView plan={plan.plan} zones={Object.fromEntries(workflows.data.map((w) => [w.name, w.timezone]))} shown={shown} more={() => setShown(shown + PLAN_PAGE)} />}
    </Page>
  );
}

// When the previewed backfill may start windows, and whether it would wait now.
function WhenView({ request, waiting }: { request: BackfillRequest; waiting: string | null }) {
  const hours = request.allowed_hours;
  return (
    <section class="plan-when" aria-label="When">
      <h2>When</h2>
      <dl class="facts">
        <dt>Allowed hours</dt>
        <dd class="when-hours">{hours ? `${hours.spans.join("; ")} (${hours.timezone})` : "any time"}</dd>
        <dt>Start at</dt>
        <dd class="when-start-at">{request.start_at ? <Time ms={Date.parse(request.start_at)} tz={hours?.timezone ?? "UTC"} /> : "now"}</dd>
      </dl>
      <p role="status" class="when-waiting">{waiting ?? "It would start windows at once."}</p>
    </section>
  );
}

function PlanView(props: { plan: Plan; zones: Record<string, string>; shown: number; more: () => void }) {
  const { plan, zones, shown, more } = props;
  // Execution order is the plan's order; the summary keeps it per workflow.
  const per = new Map<string, { runs: number; skips: number }>();
  for (const e of plan.entries) {
    const c = per.get(e.workflow) ?? { runs: 0, skips: 0 };
    if (e.action === "run") c.runs++;
    else c.skips++;
    per.set(e.workflow, c);
  }
  return (
    <section class="plan" aria-label="Plan">
      <h2>Plan</h2>
      <p role="status" class="plan-summary">
        {plan.runs} window{plan.runs === 1 ? "" : "s"} to run, {plan.skips} skipped
        {plan.truncated && " (the plan is longer than the preview shows)"}.
      </p>
      <ol class="plan-workflows">
        {[...per].map(([w, c]) => (
          <li key={w}>
            <strong>{w}</strong>: {c.runs} to run, {c.skips} skipped
          </li>
        ))}
      </ol>
      {plan.cascade.length > 0 && (
        <ul class="plan-cascade" aria-label="Cascade">
          {plan.cascade.map((c) => (
            <li key={c.workflow} data-included={c.included}>
              <strong>{c.workflow}</strong> (depth {c.depth}){" "}
              {c.included ? `adds ${c.windows} window(s)` : `left out: would have added ${c.windows} window(s)`}
            </li>
          ))}
        </ul>
      )}
      <div class="table-wrap">
        <table class="list plan-table">
          <thead>
            <tr><th scope="col">#</th><th scope="col">Workflow</th><th scope="col">Window (workflow time zone)</th><th scope="col">Action</th><th scope="col">Reason</th></tr>
          </thead>
          <tbody>
            {plan.entries.slice(0, shown).map((e, i) => (
              <tr key={i} class={`plan-${e.action}`}>
                <td>{i + 1}</td>
                <td>{e.workflow}</td>
                <td><Time ms={e.window_start_ms} tz={zones[e.workflow] ?? "UTC"} /></td>
                <td>{e.action}</td>
                <td>{e.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {shown < plan.entries.length && (
        <button type="button" onClick={more}>Show {Math.min(PLAN_PAGE, plan.entries.length - shown)} more</button>
      )}
    </section>
  );
}
