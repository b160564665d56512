// The console speaks only the public REST API (`/api/v1`), with the token
// from session storage in the Authorization header: whatever it can do, a
// script can too.

export type RunState =
  | "queued"
  | "waiting_upstream"
  | "running"
  | "succeeded"
  | "failed"
  | "cancelled";

export interface WorkflowSummary {
  name: string;
  cron: string;
  timezone: string;
  paused: boolean;
  tasks: number;
  version: number;
  /** Names of the workflows it depends on. */
  upstream: string[];
  last_window_start: number | null;
  last_window_state: string | null;
  next_due: number | null;
}

export interface TaskDef {
  name: string;
  plugin: string;
  depends_on: string[];
  retries: number;
  params: unknown;
  timeout: string | null;
  fuel: number | null;
  memory: string | number | null;
}

export interface WorkflowDef {
  name: string;
  description?: string;
  paused: boolean;
  catchup: boolean;
  failure_strategy: string;
  max_active_runs: number;
  schedule: { cron: string; timezone: string; start: string | null; end: string | null };
  tasks: TaskDef[];
  upstream: { workflow: string; offset: number }[];
}

export interface WorkflowVersion {
  name: string;
  version: number;
  created_ms: number;
  definition: WorkflowDef;
}

export interface TaskStatus {
  name: string;
  state: string;
  attempts: number;
  failures: number;
  last_error: string | null;
  retry_at: number | null;
}

export interface Run {
  id: number;
  tenant: string;
  workflow: string;
  version: number;
  trigger: string;
  state: RunState;
  window_start: number;
  window_end: number;
  created_ms: number;
  started_ms: number | null;
  ended_ms: number | null;
  tasks: TaskStatus[];
  waiting_on: unknown[];
}

export interface Attempt {
  run_id: number;
  task: string;
  attempt: number;
  started_ms: number;
  ended_ms: number | null;
  error_kind: string | null;
  message: string | null;
  fuel: number | null;
  log: { at_ms: number; source: string; message: string }[];
}

export interface BackfillRequest {
  workflow: string;
  start?: string;
  end?: string;
  dates?: string[];
  mode?: "parallel" | "serial";
  parallelism?: number;
  order?: "asc" | "desc";
  rerun?: "missing" | "failed" | "all";
  from_task?: string;
  downstream?: string;
  version?: number;
  priority?: "low" | "normal" | "high";
  max_failed_windows?: number;
  overlap?: "wait" | "skip" | "cancel_other";
  dry_run?: boolean;
}

export interface PlanEntry {
  workflow: string;
  window_start: number;
  window_end: number;
  action: string;
  reason: string;
}

export interface Plan {
  entries: PlanEntry[];
  runs: number;
  skips: number;
  truncated: boolean;
}

export interface Backfill {
  id: number;
  tenant: string;
  request: BackfillRequest;
  version: number;
  state: "running" | "paused" | "succeeded" | "failed" | "cancelled";
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
  created_ms: number;
  updated_ms: number;
  ended_ms: number | null;
  throttled: string | null;
  stage: number;
  stages: { workflow: string; windows: number[] }[];
  estimated_total: number | null;
}

export interface Progress {
  done: number;
  estimated_total: number | null;
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
  windows_per_second: number;
  eta_seconds: number | null;
  throttled: string | null;
  all_materialized: boolean;
}

export interface BackfillWindow {
  backfill: number;
  workflow: string;
  window_start: number;
  window_end: number;
  state: string;
  run_id: number | null;
  reason: string;
}

export interface StripBucket {
  start: number;
  end: number;
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
  cancelled: number;
  pending: number;
}

export interface Strip {
  workflow: string;
  from: number;
  to: number;
  buckets: StripBucket[];
}

export interface Token {
  id: number;
  tenant: string;
  label: string;
  created_ms: number;
  revoked: boolean;
}

export interface Quotas {
  tenant: string;
  quotas: Record<string, number>;
  overrides: Record<string, number>;
  usage: Record<string, number>;
}

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
    call<{ workflows: WorkflowSummary[]; next: string | null }>("GET", "/workflows", {
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
    call<{ versions: WorkflowVersion[]; next: number | null }>(
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
  pause: (name: string) => call<unknown>("POST", `/workflows/${encodeURIComponent(name)}/pause`),
  unpause: (name: string) =>
    call<unknown>("POST", `/workflows/${encodeURIComponent(name)}/unpause`),
  runs: (name: string, query: { from?: string; to?: string; after?: number; limit?: number; state?: string }) =>
    call<{ runs: Run[]; next: number | null }>("GET", `/workflows/${encodeURIComponent(name)}/runs`, {
      query,
    }),
  run: (id: number) => call<{ run: Run; attempts: Attempt[] }>("GET", `/runs/${id}`),
  retryRun: (id: number) => call<Run>("POST", `/runs/${id}/retry`),
  cancelRun: (id: number, interrupt: boolean) =>
    call<Run>("POST", `/runs/${id}/cancel`, { query: { interrupt } }),
  runWindow: (name: string, window: string) =>
    call<Run>("POST", `/workflows/${encodeURIComponent(name)}/runs`, { body: { window } }),

  backfills: (after?: number) =>
    call<{ backfills: { backfill: Backfill; progress: Progress }[]; next: number | null }>(
      "GET",
      "/backfills",
      { query: { after, limit: 50, order: "desc" } },
    ),
  dryRun: (req: BackfillRequest) =>
    call<{ dry_run: true; plan: Plan }>("POST", "/backfills", { body: { ...req, dry_run: true } }),
  createBackfill: (req: BackfillRequest) =>
    call<{ backfill: Backfill; progress: Progress }>("POST", "/backfills", { body: req }),
  backfill: (id: number) =>
    call<{ backfill: Backfill; progress: Progress }>("GET", `/backfills/${id}`),
  backfillWindows: (
    id: number,
    query: { state?: string; after?: number; after_workflow?: string; limit?: number },
  ) =>
    call<{
      windows: BackfillWindow[];
      next: { after: number; after_workflow: string } | null;
    }>("GET", `/backfills/${id}/windows`, { query }),
  strip: (id: number, query: { workflow?: string; from?: number; to?: number; buckets: number }) =>
    call<Strip>("GET", `/backfills/${id}/strip`, { query }),
  backfillAction: (id: number, action: "pause" | "resume" | "cancel" | "retry-failed") =>
    call<{ backfill: Backfill; progress: Progress } | Backfill>("POST", `/backfills/${id}/${action}`),

  quotas: () => call<Quotas>("GET", "/quotas"),
  tokens: (after?: number) =>
    call<{ tokens: Token[]; next: number | null }>("GET", "/tokens", { query: { after, limit: 100 } }),
  createToken: (label: string) =>
    call<{ id: number; token: string; label: string }>("POST", "/tokens", { body: { label } }),
  revokeToken: (id: number) => call<unknown>("DELETE", `/tokens/${id}`),

  tenants: (after?: string) =>
    call<{ tenants: { name: string; created_ms: number }[]; next: string | null }>("GET", "/tenants", {
      query: { after, limit: 100 },
    }),
  createTenant: (name: string) =>
    call<{ tenant: { name: string }; token: string; token_id: number }>("POST", "/tenants", {
      body: { name },
    }),
  deleteTenant: (name: string) => call<void>("DELETE", `/tenants/${encodeURIComponent(name)}`),
  tenantQuotas: (name: string) => call<Quotas>("GET", `/tenants/${encodeURIComponent(name)}/quotas`),
  tenantTokens: (name: string, after?: number) =>
    call<{ tokens: Token[]; next: number | null }>("GET", `/tenants/${encodeURIComponent(name)}/tokens`, {
      query: { after, limit: 100 },
    }),
  createTenantToken: (name: string, label: string) =>
    call<{ id: number; token: string; label: string }>(
      "POST",
      `/tenants/${encodeURIComponent(name)}/tokens`,
      { body: { label } },
    ),
  revokeTenantToken: (name: string, id: number) =>
    call<unknown>("DELETE", `/tenants/${encodeURIComponent(name)}/tokens/${id}`),
};
