import { api } from "../api";
import { href } from "../router";
import { ErrorBox, Loading, More, Page, State, Time, usePaged } from "../ui";

export function Workflows() {
  const first = usePaged(
    (after: string | undefined) => api.workflows(after).then((p) => ({ items: p.workflows, next: p.next })),
    [],
    10_000,
  );
  const rows = first.rows;
  return (
    <Page title="Workflows" actions={<a class="button" href={href("backfills", "new")}>New backfill</a>}>
      <ErrorBox error={first.error} />
      {first.loading && !first.data && <Loading what="workflows" />}
      {first.data && rows.length === 0 && (
        <p class="muted">No workflows yet: apply one with `tidemark apply workflow.toml`.</p>
      )}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Schedule</th>
                <th scope="col" class="wide-only">Time zone</th>
                <th scope="col">Paused</th>
                <th scope="col">Last window</th>
                <th scope="col">Next window</th>
                <th scope="col" class="wide-only">Tasks</th>
                <th scope="col" class="wide-only">Upstream</th>
                <th scope="col"></th>
              </tr>
            </thead>
            <tbody>
              {rows.map((w) => (
                <tr key={w.name} data-workflow={w.name}>
                  <th scope="row">
                    <a href={href("workflows", w.name)}>{w.name}</a>
                  </th>
                  <td>
                    <code>{w.cron}</code>
                  </td>
                  <td class="wide-only">{w.timezone}</td>
                  <td>{w.paused ? <span class="state s-paused">paused</span> : "no"}</td>
                  <td>
                    <State state={w.last_window_state} /> <Time ms={w.last_window_start_ms} tz={w.timezone} />
                  </td>
                  <td>
                    <Time ms={w.next_due_ms} tz={w.timezone} />
                  </td>
                  <td class="wide-only">{w.tasks}</td>
                  <td class="wide-only upstream">{w.upstream.join(", ") || <span class="muted">—</span>}</td>
                  <td class="links">
                    <a href={href("workflows", w.name, "grid")}>Grid</a>{" "}
                    <a href={`${href("backfills", "new")}?workflow=${encodeURIComponent(w.name)}`}>Backfill</a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <More more={first.more} />
    </Page>
  );
}
