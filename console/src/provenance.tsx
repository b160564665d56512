// A run's provenance on its page: why it exists, who asked (and who asked
// for each retry, when), its pinned
// version, the upstream runs it waited for, what each task ran (plugin
// digest) and read (dataset partitions and the version seen), and what
// changed against another run of the same window.
import { useState } from "preact/hooks";
import { api, type RunComparison, type RunWhy } from "./api";
import { ErrorBox, Time, useLoad } from "./ui";

function asker(r: RunWhy["requested_by"]): string {
  return r.kind === "token" ? `token ${r.token_id} (${r.label})` : r.kind;
}

export function ProvenanceView({ id, tz, state }: { id: number; tz: string; state: string }) {
  // Reloaded when the run's state changes: attempts add digests and reads.
  const why = useLoad(() => api.runWhy(id), [id, state]);
  const w = why.data;
  return (
    <section class="provenance" aria-label="Provenance">
      <h2>Why this run exists</h2>
      <ErrorBox error={why.error} />
      {w && (
        <>
          <dl class="facts">
            <dt>Cause</dt>
            <dd class="why-cause" data-kind={w.cause.kind}>{w.summary}</dd>
            <dt>Requested by</dt>
            <dd class="why-asker">{asker(w.requested_by)}</dd>
            <dt>Retried</dt>
            <dd class="why-retries">
              {w.retries.length === 0 && <span class="muted">never</span>}
              {w.retries.map((r, i) => (
                <div key={i} class="why-retry">
                  by {asker(r.requested_by)} at <Time ms={r.at_ms} tz={tz} />
                </div>
              ))}
            </dd>
            <dt>Pinned version</dt>
            <dd>{w.workflow} v{w.version}</dd>
            <dt>Upstream</dt>
            <dd>
              {w.upstream.length === 0 && <span class="muted">none</span>}
              {w.upstream.map((u) => (
                <span key={`${u.workflow}-${u.window_start_ms}`} class="why-upstream">
                  {u.workflow} <Time ms={u.window_start_ms} tz={tz} /> (
                  <a href={`#/runs/${u.run_id}`}>run #{u.run_id}</a>){" "}
                </span>
              ))}
            </dd>
          </dl>
          <div class="table-wrap">
            <table class="list why-tasks">
              <thead>
                <tr><th scope="col">Task</th><th scope="col">Plugin</th><th scope="col">Digest run</th><th scope="col">Read</th></tr>
              </thead>
              <tbody>
                {w.tasks.map((t) => (
                  <tr key={t.task} data-task={t.task}>
                    <th scope="row">{t.task}</th>
                    <td>{t.plugin ?? <span class="muted">—</span>}</td>
                    <td class="digest small">{t.plugin_digest ?? <span class="muted">not run</span>}</td>
                    <td class="small why-reads">
                      {t.reads.length === 0 && <span class="muted">nothing</span>}
                      {t.reads.map((r) => (
                        <div key={`${r.dataset}-${r.partition_ms}`}>
                          {r.dataset} @ <Time ms={r.partition_ms} tz={tz} />: {r.version ?? "absent"}
                        </div>
                      ))}
                      {t.reads_omitted > 0 && <div>and {t.reads_omitted} more</div>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Compare id={id} />
        </>
      )}
    </section>
  );
}

function Compare({ id }: { id: number }) {
  const [other, setOther] = useState("");
  const [result, setResult] = useState<RunComparison>();
  const [error, setError] = useState<Error>();
  const submit = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    api.compareRuns(id, Number(other)).then(setResult, (err: Error) => {
      setResult(undefined);
      setError(err);
    });
  };
  return (
    <form class="why-compare" onSubmit={submit}>
      <label>
        Compare with run #{" "}
        <input type="number" min={1} value={other} onInput={(e) => setOther(e.currentTarget.value)} required />
      </label>{" "}
      <button type="submit">Compare</button>
      <ErrorBox error={error} />
      {result && result.differences.length === 0 && <p role="status">Nothing changed.</p>}
      {result && result.differences.length > 0 && (
        <table class="list why-diff">
          <thead>
            <tr><th scope="col">What</th><th scope="col">This run</th><th scope="col">Run #{result.other.run_id}</th></tr>
          </thead>
          <tbody>
            {result.differences.map((d) => (
              <tr key={d.field}>
                <th scope="row">{d.field}</th>
                <td>{d.this ?? "—"}</td>
                <td>{d.other ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </form>
  );
}
