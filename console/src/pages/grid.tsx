// Windows × tasks, like Airflow's grid: one row per window (its latest run),
// one cell per task, coloured by state. Rows are virtualised, so 10,000
// windows render as the ~40 rows on screen.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, type Attempt, type Run } from "../api";
import { href } from "../router";
import { duration, zonedMidnight } from "../time";
import { ErrorBox, Loading, Page, State, Time, useLoad } from "../ui";

const ROW_H = 28;
const HEAD_H = 32;
const OVERSCAN = 12;
const PAGE = 5000;

function daysAgo(n: number): string {
  return new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);
}

export function Grid({ name }: { name: string }) {
  const wf = useLoad(() => api.workflow(name), [name]);
  const [from, setFrom] = useState(daysAgo(30));
  const [to, setTo] = useState("");
  const [range, setRange] = useState({ from: daysAgo(30), to: "" });
  const [runs, setRuns] = useState<Run[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error>();
  const [picked, setPicked] = useState<{ run: Run; task: string }>();
  const [tick, setTick] = useState(0);
  const tz = wf.data?.definition.schedule.timezone ?? "UTC";

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(undefined);
    (async () => {
      // The latest run of each window, newest window first.
      const latest = new Map<number, Run>();
      let after: number | undefined;
      for (;;) {
        const p = await api.runs(name, {
          from: range.from ? String(zonedMidnight(range.from, tz)) : undefined,
          to: range.to ? String(zonedMidnight(range.to, tz)) : undefined,
          after,
          limit: PAGE,
        });
        for (const r of p.runs) {
          const prev = latest.get(r.window_start_ms);
          if (!prev || prev.id < r.id) latest.set(r.window_start_ms, r);
        }
        if (!live) return;
        setRuns([...latest.values()].sort((a, b) => b.window_start_ms - a.window_start_ms));
        if (!p.next) break;
        after = p.next;
      }
    })().then(
      () => live && setLoading(false),
      (e: Error) => {
        if (!live) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [name, range.from, range.to, tick, tz]);

  const tasks = useMemo(() => {
    const names = (wf.data?.definition.tasks ?? []).map((t) => t.name);
    for (const r of runs) for (const t of r.tasks) if (!names.includes(t.name)) names.push(t.name);
    return names;
  }, [wf.data, runs]);

  return (
    <Page
      title={`${name}: grid`}
      actions={<a class="button" href={href("workflows", name)}>Workflow</a>}
    >
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setRange({ from, to });
        }}
      >
        <label>
          Windows from <input type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          to <input type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Show</button>
        <button type="button" onClick={() => setTick((t) => t + 1)}>Refresh</button>
        <span class="muted" role="status">
          {loading ? "Loading…" : `${runs.length} windows`}
        </span>
      </form>
      <ErrorBox error={error ?? wf.error} />
      {!wf.data && !wf.error && <Loading what="the workflow" />}
      {wf.data && (
        <div class="grid-layout">
          <Rows runs={runs} tasks={tasks} tz={tz} onPick={(run, task) => setPicked({ run, task })} picked={picked} />
          {picked && <Attempts run={picked.run} task={picked.task} tz={tz} onClose={() => setPicked(undefined)} />}
        </div>
      )}
    </Page>
  );
}

function Rows(props: {
  runs: Run[];
  tasks: string[];
  tz: string;
  picked?: { run: Run; task: string };
  onPick: (run: Run, task: string) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const first = Math.max(0, Math.floor((top - HEAD_H) / ROW_H) - OVERSCAN);
  const last = Math.min(props.runs.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
  const cols = `minmax(15rem, 1.4fr) 7rem repeat(${props.tasks.length}, minmax(4.5rem, 1fr))`;
  // One scroller for the header and the rows, so columns stay aligned
  // when a narrow screen scrolls sideways.
  const minWidth = `${23 + props.tasks.length * 4.8}rem`;
  return (
    <div class="grid" role="grid" aria-rowcount={props.runs.length + 1} aria-label="Windows by task">
      <div class="grid-body" ref={box} onScroll={(e) => setTop((e.target as HTMLDivElement).scrollTop)}>
        <div class="grid-row grid-head" role="row" style={{ gridTemplateColumns: cols, minWidth }}>
          <span role="columnheader">Window ({props.tz})</span>
          <span role="columnheader">Run</span>
          {props.tasks.map((t) => (
            <span role="columnheader" key={t}>{t}</span>
          ))}
        </div>
        <div class="grid-rows" style={{ height: `${props.runs.length * ROW_H}px`, position: "relative", minWidth }}>
          {props.runs.slice(first, last).map((r, i) => (
            <div
              class="grid-row"
              role="row"
              key={r.window_start_ms}
              aria-rowindex={first + i + 2}
              style={{ gridTemplateColumns: cols, top: `${(first + i) * ROW_H}px` }}
            >
              <span role="rowheader"><Time ms={r.window_start_ms} tz={props.tz} /></span>
              <span><a href={href("runs", r.id)}>#{r.id}</a> <State state={r.state} /></span>
              {props.tasks.map((t) => {
                const st = r.tasks.find((x) => x.name === t)?.state ?? "none";
                const on = props.picked?.run.id === r.id && props.picked.task === t;
                return (
                  <button
                    type="button"
                    role="gridcell"
                    key={t}
                    class={`cell s-${st}${on ? " picked" : ""}`}
                    title={`${t}: ${st}`}
                    aria-label={`${t} ${st}`}
                    onClick={() => props.onPick(r, t)}
                  />
                );
              })}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

export function AttemptList({ attempts, tz }: { attempts: Attempt[]; tz: string }) {
  if (attempts.length === 0) return <p class="muted">No attempts yet.</p>;
  return (
    <ol class="attempts">
      {attempts.map((a) => (
        <li key={`${a.task}-${a.attempt}`} data-attempt={a.attempt}>
          <p>
            <strong>{a.task} attempt {a.attempt}</strong>{" "}
            <State state={a.ended_ms === null ? "running" : a.error_kind ? "failed" : "succeeded"} />{" "}
            <Time ms={a.started_ms} tz={tz} />
            {a.ended_ms !== null && ` · ${duration(a.ended_ms - a.started_ms)}`}
          </p>
          <dl class="facts small">
            <dt>Error kind</dt>
            <dd class="error-kind">{a.error_kind ?? "none"}</dd>
            <dt>Message</dt>
            <dd class="attempt-message">{a.message ?? "—"}</dd>
            <dt>Fuel used</dt>
            <dd>{a.fuel === null ? "—" : a.fuel.toLocaleString("en")}</dd>
          </dl>
          {a.log.length > 0 && (
            <pre class="log" aria-label={`Log of ${a.task} attempt ${a.attempt}`}>
              {a.log.map((l) => `+${l.at_ms - a.started_ms}ms ${l.source}: ${l.message}`).join("\n")}
            </pre>
          )}
        </li>
      ))}
    </ol>
  );
}

function Attempts({ run, task, tz, onClose }: { run: Run; task: string; tz: string; onClose: () => void }) {
  const detail = useLoad(() => api.run(run.id), [run.id]);
  const attempts = (detail.data?.attempts ?? [])
    .filter((a) => a.task === task)
    .sort((a, b) => a.attempt - b.attempt);
  return (
    <aside class="panel" aria-label={`Attempts of ${task}`}>
      <header>
        <h2>
          {task} · <Time ms={run.window_start_ms} tz={tz} />
        </h2>
        <button type="button" onClick={onClose}>Close</button>
      </header>
      <p>
        Run <a href={href("runs", run.id)}>#{run.id}</a> <State state={run.state} />
      </p>
      <ErrorBox error={detail.error} />
      {detail.data ? <AttemptList attempts={attempts} tz={tz} /> : <Loading what="attempts" />}
    </aside>
  );
}
