// The tenant's webhook targets and the delivery log: each delivery's
// attempts, last HTTP status and error. Targets are created with the CLI or
// the API (their signing secret lives in a connection, never here).
import { api, type Delivery } from "../api";
import { ErrorBox, Loading, More, Page, Time, useLoad, usePaged } from "../ui";

function DeliveryRow({ d }: { d: Delivery }) {
  return (
    <tr data-delivery={d.delivery_id} data-state={d.state}>
      <td><code>{d.delivery_id}</code></td>
      <td>{d.event}</td>
      <td>{d.target}</td>
      <td>{d.state}</td>
      <td>{d.attempts}</td>
      <td>{d.last_status ?? <span class="muted">—</span>}</td>
      <td>{d.last_error ?? <span class="muted">—</span>}</td>
      <td><Time ms={d.updated_ms} tz="UTC" /></td>
    </tr>
  );
}

export function NotificationsPage() {
  const targets = useLoad(() => api.notifyTargets(), [], 10000);
  const log = usePaged(
    (before: number | undefined) => api.deliveries(before).then((p) => ({ items: p.deliveries, next: p.next ?? null })),
    [],
    5000,
  );
  return (
    <Page title="Notifications">
      <section aria-label="Targets">
        <h2>Webhook targets</h2>
        <ErrorBox error={targets.error} />
        {targets.data ? (
          targets.data.targets.length ? (
            <table class="list targets">
              <thead>
                <tr><th scope="col">Name</th><th scope="col">URL</th><th scope="col">Signed by</th><th scope="col">Events</th></tr>
              </thead>
              <tbody>
                {targets.data.targets.map((t) => (
                  <tr key={t.name} data-target={t.name}>
                    <th scope="row">{t.name}</th>
                    <td><code>{t.url}</code></td>
                    <td>{t.connection}.{t.secret_field}</td>
                    <td>{t.events.join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">No targets. Create one with <code>tidemark notify create</code>.</p>
          )
        ) : (
          !targets.error && <Loading what="targets" />
        )}
      </section>
      <section aria-label="Delivery log">
        <h2>Delivery log</h2>
        <ErrorBox error={log.error} />
        {log.data ? (
          <>
            <table class="list deliveries">
              <thead>
                <tr>
                  <th scope="col">Id</th><th scope="col">Event</th><th scope="col">Target</th><th scope="col">State</th>
                  <th scope="col">Attempts</th><th scope="col">Status</th><th scope="col">Last error</th><th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {log.data.map((d) => <DeliveryRow key={d.delivery_id} d={d} />)}
              </tbody>
            </table>
            <More more={log.more} />
          </>
        ) : (
          !log.error && <Loading what="deliveries" />
        )}
      </section>
    </Page>
  );
}
