// The console speaks only the public REST API (`/api/v1`), with the token
// from session storage in the Authorization header: whatever it can do, a
// script can too.

import type { components } from "./generated/api";

// The bodies' types are generated from the committed OpenAPI document
// (docs/openapi.json, by openapi-typescript at build time): when the API
// changes a body, `tsc` fails here or where the console reads it.
type Schemas = components["schemas"];

export type RunState = Schemas["RunState"];
export type WorkflowSummary = Schemas["WorkflowSummary"];
export type TaskDef = Schemas["Task"];
export type WorkflowDef = Schemas["WorkflowDefinition"];
export type WorkflowVersion = Schemas["WorkflowVersion"];
export type TaskStatus = Schemas["TaskRun"];
export type Run = Schemas["Run"];
export type Attempt = Schemas["Attempt"];
export type RunWhy = Schemas["RunWhy"];
export type RunComparison = Schemas["RunComparison"];
export type BackfillRequest = Schemas["BackfillRequest"];
export type PlanEntry = Schemas["PlanEntry"];
export type Plan = Schemas["Plan"];
export type Estimate = Schemas["Estimate"];
export type Backfill = Schemas["Backfill"];
export type Progress = Schemas["Progress"];
export type BackfillStatus = Schemas["BackfillStatus"];
export type BackfillWindow = Schemas["BackfillWindow"];
export type StripBucket = Schemas["StripBucket"];
export type Strip = Schemas["Strip"];
export type Token = Schemas["Token"];
export type Quotas = Schemas["TenantQuotas"];
export type GapReport = Schemas["GapReport"];
export type NotifyTarget = Schemas["NotifyTarget"];
export type Delivery = Schemas["Delivery"];

export interface Session {
  token: string;
  role: "tenant" | "admin";
  tenant: string | null;
}

/** An error answer of the API: `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const SESSION_KEY = "tidemark.session";

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw) as Session;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null) {
  if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION_KEY);
}

/** Called on any 401: the app returns to the sign-in page with the message. */
let onUnauthorized: (message: string) => void = () => {};
export function setUnauthorizedHandler(f: (message: string) => void) {
  onUnauthorized = f;
}

type Query = Record<string, string | number | boolean | undefined | null>;

function url(path: string, query?: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return `/api/v1${path}${s ? `?${s}` : ""}`;
}

async function call<T>(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; token?: string; quiet401?: boolean } = {},
): Promise<T> {
  const token = opts.token ?? loadSession()?.token;
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(url(path, opts.query), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  } catch (e) {
    throw new ApiError(0, "network", `the daemon did not answer: ${String(e)}`);
  }
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!resp.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
    const e = new ApiError(
      resp.status,
      err?.code ?? "http_error",
      err?.message ?? `${resp.status} ${resp.statusText}: ${text.slice(0, 200)}`,
    );
    if (resp.status === 401 && !opts.quiet401) onUnauthorized(e.message);
    throw e;
  }
  return data as T;
}

export const api = {
  /** Which kind of token this is: a tenant's answers `/quotas`, the admin's `/tenants`. */
  async whoami(token: string): Promise<Session> {
    try {
      const q = await call<Quotas>("GET", "/quotas", { token, quiet401: true });
      return { token, role: "tenant", tenant: q.tenant };
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 403) throw e;
    }
    await call("GET", "/tenants", { token, quiet401: true, query: { limit: 1 } });
    return { token, role: "admin", tenant: null };
  },

  workflows: (after?: string) =>
    call<Schemas["WorkflowList"]>("GET", "/workflows", {
      query: { after, limit: 200 },
    }),
  async allWorkflows(): Promise<WorkflowSummary[]> {
    const out: WorkflowSummary[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await api.workflows(after);
      out.push(...page.workflows);
      if (!page.next) return out;
      after = page.next;
    }
  },
  workflow: (name: string, version?: number) =>
    call<WorkflowVersion>("GET", `/workflows/${encodeURIComponent(name)}`, {
      query: { version },
    }),
  versions: (name: string, after?: number) =>
    call<Schemas["WorkflowVersions"]>(
      "GET",
      `/workflows/${encodeURIComponent(name)}/versions`,
      { query: { after, limit: 100 } },
    ),
  async allVersions(name: string): Promise<WorkflowVersion[]> {
    const out: WorkflowVersion[] = [];
    let after: number | undefined;
    for (;;) {
      const p = await api.versions(name, after);
      out.push(...p.versions);
      if (!p.next) return out;
      after = p.next;
    }
  },
  pause: (name: string) => call<Schemas["PauseState"]>("POST", `/workflows/${encodeURIComponent(name)}/pause`),
  unpause: (name: string) =>
    call<Schemas["PauseState"]>("POST", `/workflows/${encodeURIComponent(name)}/unpause`),
  runs: (name: string, query: { from?: string; to?: string; after?: number; limit?: number; state?: string }) =>
    call<Schemas["RunList"]>("GET", `/workflows/${encodeURIComponent(name)}/runs`, {
      query,
    }),
  gaps: (name: string, query: { since?: string; until?: string }) =>
    call<GapReport>("GET", `/workflows/${encodeURIComponent(name)}/gaps`, { query }),
  repairGaps: (name: string, body: { since?: string; until?: string; propose: boolean }) =>
    call<Schemas["Repair"]>("POST", `/workflows/${encodeURIComponent(name)}/gaps/repair`, { body }),
  run: (id: number) => call<Schemas["RunDetail"]>("GET", `/runs/${id}`),
  runWhy: (id: number) => call<RunWhy>("GET", `/runs/${id}/why`),
  compareRuns: (id: number, other: number) =>
    call<RunComparison>("GET", `/runs/${id}/compare/${other}`),
  retryRun: (id: number) => call<Run>("POST", `/runs/${id}/retry`),
  cancelRun: (id: number, interrupt: boolean) =>
    call<Run>("POST", `/runs/${id}/cancel`, { query: { interrupt } }),
  runWindow: (name: string, window: string) =>
    call<Run>("POST", `/workflows/${encodeURIComponent(name)}/runs`, { body: { window } }),

  backfills: (after?: number) =>
    call<Schemas["BackfillList"]>(
      "GET",
      "/backfills",
      { query: { after, limit: 50, order: "desc" } },
    ),
  dryRun: (req: BackfillRequest) =>
    call<Schemas["DryRun"]>("POST", "/backfills", { body: { ...req, dry_run: true } }),
  createBackfill: (req: BackfillRequest) =>
    call<BackfillStatus>("POST", "/backfills", { body: req }),
  backfill: (id: number) =>
    call<BackfillStatus>("GET", `/backfills/${id}`),
  backfillWindows: (
    id: number,
    query: { state?: string; after?: number; after_workflow?: string; limit?: number },
  ) =>
    call<Schemas["WindowList"]>("GET", `/backfills/${id}/windows`, { query }),
  strip: (id: number, query: { workflow?: string; from?: number; to?: number; buckets: number }) =>
    call<Strip>("GET", `/backfills/${id}/strip`, { query }),
  backfillAction: (id: number, action: "pause" | "resume" | "cancel" | "retry-failed") =>
    call<BackfillStatus>("POST", `/backfills/${id}/${action}`),
  verifyBackfill: (id: number) =>
    call<Schemas["Verification"]>("POST", `/backfills/${id}/verify`),

  quotas: () => call<Quotas>("GET", "/quotas"),
  tokens: (after?: number) =>
    call<Schemas["TokenList"]>("GET", "/tokens", { query: { after, limit: 100 } }),
  createToken: (label: string) =>
    call<Schemas["TokenCreated"]>("POST", "/tokens", { body: { label } }),
  revokeToken: (id: number) => call<Token>("DELETE", `/tokens/${id}`),
  notifyTargets: () => call<Schemas["NotifyTargetList"]>("GET", "/notifications/targets"),
  deliveries: (before?: number) =>
    call<Schemas["DeliveryList"]>("GET", "/notifications/deliveries", { query: { before, limit: 100 } }),

  nodes: () => call<Schemas["NodeList"]>("GET", "/nodes"),
  tenants: (after?: string) =>
    call<Schemas["TenantList"]>("GET", "/tenants", {
      query: { after, limit: 100 },
    }),
  createTenant: (name: string) =>
    call<Schemas["TenantCreated"]>("POST", "/tenants", {
      body: { name },
    }),
  deleteTenant: (name: string) => call<void>("DELETE", `/tenants/${encodeURIComponent(name)}`),
  tenantQuotas: (name: string) => call<Quotas>("GET", `/tenants/${encodeURIComponent(name)}/quotas`),
  tenantTokens: (name: string, after?: number) =>
    call<Schemas["TokenList"]>("GET", `/tenants/${encodeURIComponent(name)}/tokens`, {
      query: { after, limit: 100 },
    }),
  createTenantToken: (name: string, label: string) =>
    call<Schemas["TokenCreated"]>(
      "POST",
      `/tenants/${encodeURIComponent(name)}/tokens`,
      { body: { label } },
    ),
  revokeTenantToken: (name: string, id: number) =>
    call<Token>("DELETE", `/tenants/${encodeURIComponent(name)}/tokens/${id}`),
};
