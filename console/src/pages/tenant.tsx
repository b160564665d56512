// The calling tenant: quotas against current usage, and its API tokens.
import { useState } from "preact/hooks";
import { api, type Quotas, type Token } from "../api";
import { Action, ErrorBox, Loading, More, Page, Time, useLoad, usePaged } from "../ui";

// Which usage figure each quota is held against.
const USAGE_OF: Record<string, string> = {
  concurrent_attempts: "running_attempts",
  dataset_bytes: "dataset_bytes",
  plugins: "plugins",
  triggers_per_minute: "trigger_tokens_left",
};

export function QuotaTable({ q }: { q: Quotas }) {
  // Looked up by quota name: the quota and usage names are one vocabulary.
  const usage: Record<string, number> = q.usage;
  const usageOnly = Object.keys(usage).filter((k) => !Object.values(USAGE_OF).includes(k));
  return (
    <table class="list quotas">
      <thead>
        <tr><th scope="col">Quota</th><th scope="col">Limit</th><th scope="col">Set for this tenant</th><th scope="col">Usage now</th></tr>
      </thead>
      <tbody>
        {Object.entries(q.quotas).map(([k, v]) => {
          const u = USAGE_OF[k];
          return (
            <tr key={k} data-quota={k}>
              <th scope="row">{k.replace(/_/g, " ")}</th>
              <td>{v.toLocaleString("en")}</td>
              <td>{k in q.overrides ? "yes" : <span class="muted">default</span>}</td>
              <td>{u ? `${(usage[u] ?? 0).toLocaleString("en")}${u === "trigger_tokens_left" ? " left" : ""}` : <span class="muted">—</span>}</td>
            </tr>
          );
        })}
        {usageOnly.map((k) => (
          <tr key={k}>
            <th scope="row">{k.replace(/_/g, " ")}</th>
            <td class="muted">—</td>
            <td class="muted">—</td>
            <td>{(usage[k] ?? 0).toLocaleString("en")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Tokens(props: {
  list: (after: number | undefined) => Promise<{ tokens: Token[]; next: number | null }>;
  create: (label: string) => Promise<{ id: number; token: string }>;
  revoke: (id: number) => Promise<unknown>;
  deps: unknown[];
}) {
  const tokens = usePaged(
    (after: number | undefined) => props.list(after).then((p) => ({ items: p.tokens, next: p.next })),
    props.deps,
  );
  const [label, setLabel] = useState("");
  const [secret, setSecret] = useState<string>();
  const [error, setError] = useState<Error>();
  const create = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const t = await props.create(label.trim());
      setSecret(t.token);
      setLabel("");
      tokens.reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <section aria-label="Tokens">
      <h2>API tokens</h2>
      <ErrorBox error={tokens.error} />
      {tokens.data ? (
        <>
        <table class="list tokens">
          <thead>
            <tr><th scope="col">Id</th><th scope="col">Label</th><th scope="col">Created (UTC)</th><th scope="col">State</th><th scope="col"></th></tr>
          </thead>
          <tbody>
            {tokens.rows.map((t) => (
              <tr key={t.id} data-token={t.id}>
                <td>{t.id}</td>
                <td>{t.label || <span class="muted">—</span>}</td>
                <td><Time ms={t.created_ms} tz="UTC" /></td>
                <td>{t.revoked ? "revoked" : "active"}</td>
                <td>
                  {!t.revoked && (
                    <Action
                      label="Revoke"
                      kind="danger"
                      confirm={`Revoke token ${t.id}${t.label ? ` (${t.label})` : ""}? Clients using it are refused at once.`}
                      run={() => props.revoke(t.id)}
                      done={tokens.reload}
                      ok="Revoked"
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <More more={tokens.more} />
        </>
      ) : (
        !tokens.error && <Loading what="tokens" />
      )}
      <form class="inline" onSubmit={create}>
        <label for="token-label">New token label</label>
        <input id="token-label" value={label} maxLength={200} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} />
        <button type="submit">Create token</button>
      </form>
      <ErrorBox error={error} />
      {secret && (
        <p class="notice" role="status">
          New token (shown once, copy it now): <code class="secret">{secret}</code>
        </p>
      )}
    </section>
  );
}

export function TenantPage() {
  const q = useLoad(() => api.quotas(), [], 5000);
  return (
    <Page title={q.data ? `Tenant ${q.data.tenant}` : "Tenant"}>
      <h2>Quotas and usage</h2>
      <ErrorBox error={q.error} />
      {q.data ? <QuotaTable q={q.data} /> : !q.error && <Loading what="quotas" />}
      <Tokens list={api.tokens} create={api.createToken} revoke={api.revokeToken} deps={[]} />
    </Page>
  );
}
