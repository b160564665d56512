import { api, type Backfill } from "../api";
import { href } from "../router";
import { ErrorBox, Loading, More, Page, State, Time, usePaged } from "../ui";

export function describeSelection(b: Backfill): string {
  const r = b.request;
  if (r.dates) return `${r.dates.length} date${r.dates.length === 1 ? "" : "s"}`;
  return `${r.start} → ${r.end}`;
}

/** Who made a gap repair backfill, for people. */
export function repairOrigin(r: NonNullable<Backfill["gap_repair"]>): string {
  const n = `${r.windows} window${r.windows === 1 ? "" : "s"}`;
  if (r.by === "propose") return `proposed by the gap detector (${n}): resume to approve`;
  if (r.by === "auto") return `started by the gap detector (${n})`;
  return `requested (${n})`;
}

export function Backfills() {
  const first = usePaged(
    (after: number | undefined) => api.backfills(after).then((p) => ({ items: p.backfills, next: p.next })),
    [],
    3000,
  );
  const rows = first.rows;
  return (
    <Page title="Backfills" actions={<a class="button primary" href={href("backfills", "new")}>New backfill</a>}>
      <ErrorBox error={first.error} />
      {first.loading && !first.data && <Loading what="backfills" />}
      {first.data && rows.length === 0 && <p class="muted">No backfills yet.</p>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Backfill</th>
                <th scope="col">Workflow</th>
                <th scope="col">Windows</th>
                <th scope="col">State</th>
                <th scope="col">Done</th>
                <th scope="col">Failed</th>
                <th scope="col">Created (UTC)</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ backfill: b, progress: p }) => (
                <tr key={b.id} data-backfill={b.id}>
                  <th scope="row"><a href={href("backfills", b.id)}>#{b.id}</a></th>
                  <td>
                    {b.request.workflow}
                    {b.gap_repair && (
                      <span class="chip gap-repair" title={repairOrigin(b.gap_repair)}>
                        {b.gap_repair.by === "propose" ? "proposed repair" : "gap repair"}
                      </span>
                    )}
                  </td>
                  <td>{describeSelection(b)}</td>
                  <td><State state={b.state} /></td>
                  <td>{p.done} / {p.estimated_total ?? "?"}</td>
                  <td>{b.failed}</td>
                  <td><Time ms={b.created_ms} tz="UTC" /></td>
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
