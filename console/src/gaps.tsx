// A workflow's gaps: windows missing, failed, or stale because an input
// was committed again, each with its reason, and the repair (run now, or
// proposed for approval) made with one click.

import { useState } from "preact/hooks";
import { api } from "./api";
import { go, href } from "./router";
import { Action, ErrorBox, Loading, Time, useLoad } from "./ui";

export function Gaps({ name, tz }: { name: string; tz: string }) {
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [query, setQuery] = useState<{ since?: string; until?: string }>({});
  const report = useLoad(() => api.gaps(name, query), [name, query]);
  const r = report.data;
  const repair = (propose: boolean) => async () => {
    const made = await api.repairGaps(name, { ...query, propose });
    if (made.backfill) go(href("backfills", made.backfill.backfill.id));
    else report.reload();
  };
  return (
    <section class="gaps" aria-label="Gaps">
      <h2>Gaps</h2>
      <form
        class="gap-range"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ since: since || undefined, until: until || undefined });
        }}
      >
        <label>
          From <input aria-label="Gaps from" placeholder="RFC 3339; default: the repair lookback" value={since} onInput={(e) => setSince((e.target as HTMLInputElement).value)} />
        </label>{" "}
        <label>
          to <input aria-label="Gaps until" placeholder="default: now" value={until} onInput={(e) => setUntil((e.target as HTMLInputElement).value)} />
        </label>{" "}
        <button type="submit">Find gaps</button>
      </form>
      <ErrorBox error={report.error} />
      {report.loading && !r && <Loading what="the gaps" />}
      {r && (
        <>
          <p class="gap-summary" role="status">
            {r.gaps.length === 0 ? "No gaps" : r.summary} among {r.scanned} due windows from{" "}
            <Time ms={r.since_ms} tz={tz} /> to <Time ms={r.until_ms} tz={tz} />
            {r.truncated && " (the newest were examined)"}
          </p>
          {r.gaps.length > 0 && (
            <>
              <div class="table-wrap">
                <table class="list gap-list">
                  <thead>
                    <tr><th scope="col">Window</th><th scope="col">Kind</th><th scope="col">Run</th><th scope="col">Why</th></tr>
                  </thead>
                  <tbody>
                    {r.gaps.map((g) => (
                      <tr key={g.window_start_ms} data-kind={g.kind}>
                        <td><Time ms={g.window_start_ms} tz={tz} /></td>
                        <td><span class={`chip gap-${g.kind}`}>{g.kind}</span></td>
                        <td>{g.run_id != null ? <a href={href("runs", g.run_id)}>#{g.run_id}</a> : <span class="muted">none</span>}</td>
                        <td class="small">{g.reason}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <Action label="Repair now" kind="primary" run={repair(false)} ok="Repair started" />
              <Action label="Propose repair" run={repair(true)} ok="Repair proposed" />
            </>
          )}
        </>
      )}
    </section>
  );
}
