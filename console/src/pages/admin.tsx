// The admin token's page: the daemons sharing the store, tenants (create,
// delete) and, for one tenant, its quotas, usage and tokens.
import { useState } from "preact/hooks";
import { api } from "../api";
import { Action, ErrorBox, Loading, More, Page, Time, useLoad, usePaged } from "../ui";
import { QuotaTable, Tokens } from "./tenant";

export function AdminPage() {
  const tenants = usePaged(
    (after: string | undefined) => api.tenants(after).then((p) => ({ items: p.tenants, next: p.next })),
    [],
  );
  const [picked, setPicked] = useState<string>();
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ tenant: string; token: string }>();
  const [error, setError] = useState<Error>();
  const rows = tenants.rows;
  const create = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const r = await api.createTenant(name.trim());
      setCreated({ tenant: r.tenant.name, token: r.token });
      setName("");
      tenants.reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Page title="Admin">
      <Cluster />
      <h2>Tenants</h2>
      <ErrorBox error={tenants.error} />
      {!tenants.data && !tenants.error && <Loading what="tenants" />}
      <table class="list tenants">
        <thead>
          <tr><th scope="col">Tenant</th><th scope="col">Created (UTC)</th><th scope="col"></th></tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.name} data-tenant={t.name}>
              <th scope="row">
                <button type="button" class="link" aria-pressed={picked === t.name} onClick={() => setPicked(t.name)}>
                  {t.name}
                </button>
              </th>
              <td><Time ms={t.created_ms} tz="UTC" /></td>
              <td>
                <Action
                  label="Delete"
                  kind="danger"
                  confirm={`Delete tenant ${t.name} and everything it owns (workflows, runs, datasets, tokens)?`}
                  run={() => api.deleteTenant(t.name)}
                  done={() => {
                    if (picked === t.name) setPicked(undefined);
                    tenants.reload();
                  }}
                  ok="Deleted"
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <More more={tenants.more} />
      <form class="inline" onSubmit={create}>
        <label for="tenant-name">New tenant name</label>
        <input id="tenant-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <button type="submit">Create tenant</button>
      </form>
      <ErrorBox error={error} />
      {created && (
        <p class="notice" role="status">
          Tenant {created.tenant} created. Its first token (shown once): <code class="secret">{created.token}</code>
        </p>
      )}
      {picked && <TenantDetail key={picked} name={picked} />}
    </Page>
  );
}

function TenantDetail({ name }: { name: string }) {
  const q = useLoad(() => api.tenantQuotas(name), [name]);
  return (
    <section aria-label={`Tenant ${name}`}>
      <h2>Tenant {name}</h2>
      <h3>Quotas and usage</h3>
      <ErrorBox error={q.error} />
      {q.data ? <QuotaTable q={q.data} /> : !q.error && <Loading what="quotas" />}
      <Tokens
        list={(after) => api.tenantTokens(name, after)}
        create={(label) => api.createTenantToken(name, label)}
        revoke={(id) => api.revokeTenantToken(name, id)}
        deps={[name]}
      />
    </section>
  );
}

/** The nodes sharing the store and which of them leads (polled: a failover
 * shows up here without a reload). */
function Cluster() {
  const nodes = useLoad(() => api.nodes(), [], 5000);
  const n = nodes.data;
  return (
    <section aria-labelledby="cluster-heading">
      <h2 id="cluster-heading">Nodes</h2>
      <ErrorBox error={nodes.error} />
      {!n && !nodes.error && <Loading what="nodes" />}
      {n && (
        <>
          <p class="cluster-summary">
            {n.store === "postgres" ? "PostgreSQL store" : "Embedded store"}, {n.nodes.length}{" "}
            {n.nodes.length === 1 ? "node" : "nodes"}; leader {n.leader ?? "being elected"}
            {n.store === "postgres" && `, lease epoch ${n.epoch}`}
          </p>
          <table class="list nodes">
            <thead>
              <tr>
                <th scope="col">Node</th><th scope="col">Role</th><th scope="col">Heartbeat</th>
                <th scope="col">Attempts</th><th scope="col">Address</th>
              </tr>
            </thead>
            <tbody>
              {n.nodes.map((node) => (
                <tr key={node.id} data-node={node.id}>
                  <th scope="row">{node.id}</th>
                  <td>{node.draining ? "draining" : node.leader ? "leader" : "standby"}</td>
                  <td>{(node.heartbeat_age_ms / 1000).toFixed(1)} s ago</td>
                  <td>{node.attempts}</td>
                  <td><code>{node.addr}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
