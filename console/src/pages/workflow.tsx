import { diffLines } from "diff";
import { useMemo, useState } from "preact/hooks";
import { api, type WorkflowVersion } from "../api";
import { Dag } from "../dag";
import { Gaps } from "../gaps";
import { href } from "../router";
import { Action, ErrorBox, Loading, Page, State, Time, useLoad } from "../ui";

export function WorkflowPage({ name }: { name: string }) {
  const wf = useLoad(() => api.workflow(name), [name]);
  const all = useLoad(() => api.allWorkflows(), [name]);
  const summary = all.data?.find((w) => w.name === name);
  const downstream = (all.data ?? []).filter((w) => w.upstream.includes(name));
  const reload = () => {
    wf.reload();
    all.reload();
  };
  if (wf.error) return <Page title={name}><ErrorBox error={wf.error} /></Page>;
  if (!wf.data) return <Page title={name}><Loading what="the workflow" /></Page>;
  const def = wf.data.definition;
  const tz = def.schedule.timezone ?? "UTC";
  return (
    <Page
      title={name}
      actions={
        <>
          <a class="button" href={href("workflows", name, "grid")}>Grid</a>
          <a class="button" href={`${href("backfills", "new")}?workflow=${encodeURIComponent(name)}`}>Backfill</a>
          {summary?.paused ?? def.paused ? (
            <Action label="Unpause" run={() => api.unpause(name)} done={reload} ok="Unpaused" />
          ) : (
            <Action label="Pause" run={() => api.pause(name)} done={reload} ok="Paused" />
          )}
        </>
      }
    >
      {def.description && <p>{def.description}</p>}
      <dl class="facts">
        <dt>Schedule</dt>
        <dd><code>{def.schedule.cron}</code></dd>
        <dt>Time zone</dt>
        <dd>{tz}</dd>
        <dt>Paused</dt>
        <dd>{summary?.paused ?? def.paused ? "yes" : "no"}</dd>
        <dt>Version</dt>
        <dd>{wf.data.version}</dd>
        <dt>Last window</dt>
        <dd>
          <State state={summary?.last_window_state} /> <Time ms={summary?.last_window_start_ms} tz={tz} />
        </dd>
        <dt>Next window</dt>
        <dd><Time ms={summary?.next_due_ms} tz={tz} /></dd>
        <dt>Upstream</dt>
        <dd>
          {(def.upstream ?? []).length === 0 && <span class="muted">none</span>}
          {(def.upstream ?? []).map((u) => (
            <span key={u.workflow} class="chip">
              <a href={href("workflows", u.workflow)}>{u.workflow}</a>
              {u.offset !== 0 && ` (offset ${u.offset})`}
            </span>
          ))}
        </dd>
        <dt>Downstream</dt>
        <dd>
          {downstream.length === 0 && <span class="muted">none</span>}
          {downstream.map((w) => (
            <span key={w.name} class="chip">
              <a href={href("workflows", w.name)}>{w.name}</a>
            </span>
          ))}
        </dd>
      </dl>
      <h2>Tasks</h2>
      <Dag tasks={def.tasks} />
      <Gaps name={name} tz={tz} />
      <Versions name={name} current={wf.data.version} />
    </Page>
  );
}

function pretty(v: WorkflowVersion): string {
  return JSON.stringify(v.definition, null, 2);
}

function Versions({ name, current }: { name: string; current: number }) {
  const versions = useLoad(() => api.allVersions(name), [name, current]);
  const list = versions.data ?? [];
  const [a, setA] = useState<number>();
  const [b, setB] = useState<number>();
  const left = list.find((v) => v.version === (a ?? Math.max(1, current - 1)));
  const right = list.find((v) => v.version === (b ?? current));
  const parts = useMemo(
    () => (left && right ? diffLines(pretty(left), pretty(right)) : []),
    [left, right],
  );
  return (
    <>
      <h2>Versions</h2>
      <ErrorBox error={versions.error} />
      <table class="list">
        <thead>
          <tr><th scope="col">Version</th><th scope="col">Created (UTC)</th><th scope="col">Tasks</th><th scope="col">Paused</th></tr>
        </thead>
        <tbody>
          {list.map((v) => (
            <tr key={v.version}>
              <td>{v.version}{v.version === current && " (current)"}</td>
              <td><Time ms={v.created_ms} tz="UTC" /></td>
              <td>{v.definition.tasks.length}</td>
              <td>{v.definition.paused ? "yes" : "no"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.length > 1 && (
        <div class="diff-pick">
          <label>
            Compare version{" "}
            <select value={left?.version} onChange={(e) => setA(Number((e.target as HTMLSelectElement).value))}>
              {list.map((v) => <option key={v.version} value={v.version}>{v.version}</option>)}
            </select>
          </label>{" "}
          <label>
            with version{" "}
            <select value={right?.version} onChange={(e) => setB(Number((e.target as HTMLSelectElement).value))}>
              {list.map((v) => <option key={v.version} value={v.version}>{v.version}</option>)}
            </select>
          </label>
          <pre class="diff" aria-label="Difference between the two versions">
            {parts.map((p, i) => (
              <span key={i} class={p.added ? "add" : p.removed ? "del" : "same"}>
                {p.value
                  .replace(/\n$/, "")
                  .split("\n")
                  .map((l) => `${p.added ? "+ " : p.removed ? "- " : "  "}${l}\n`)
                  .join("")}
              </span>
            ))}
          </pre>
        </div>
      )}
    </>
  );
}
