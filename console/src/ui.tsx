// Small pieces every page uses: loading data, showing errors, buttons that
// report what the server said, times with UTC on hover.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";
import { inZone, utc } from "./time";

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` when `deps` change, and again `pollMs` after each answer if
 * given: a slow answer delays the next poll instead of being overtaken.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], pollMs?: number): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const poll = useRef(pollMs);
  poll.current = pollMs;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setLoading(true);
    const again = () => {
      if (live && poll.current) timer = setTimeout(reload, poll.current);
    };
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
        setLoading(false);
        again();
      },
      (e: Error) => {
        if (!live) return;
        setError(e);
        setLoading(false);
        again();
      },
    );
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  // Polling switched on later starts from a fresh load.
  const was = useRef(pollMs);
  useEffect(() => {
    if (pollMs && !was.current) reload();
    was.current = pollMs;
  }, [pollMs, reload]);
  return { data, error, loading, reload };
}

export interface Paged<T> extends Loaded<T[]> {
  rows: T[];
  more: (() => Promise<void>) | null;
}

/**
 * A cursor-paged list: the first page is (re)loaded like `useLoad` (and
 * polled), further pages are appended on `more`.
 */
export function usePaged<T, C>(
  page: (after: C | undefined) => Promise<{ items: T[]; next: C | null }>,
  deps: unknown[],
  pollMs?: number,
): Paged<T> {
  const [extra, setExtra] = useState<T[]>([]);
  const [next, setNext] = useState<C | null>(null);
  // Once the user has loaded more pages, polling the first page would
  // shift what follows it: the list then holds still until they reload.
  const first = useLoad(
    async () => {
      const p = await page(undefined);
      setExtra([]);
      setNext(p.next);
      return p.items;
    },
    deps,
    extra.length === 0 ? pollMs : undefined,
  );
  const more =
    next === null || next === undefined
      ? null
      : async () => {
          const p = await page(next);
          setExtra((e) => [...e, ...p.items]);
          setNext(p.next);
        };
  return { ...first, rows: [...(first.data ?? []), ...extra], more };
}

export function ErrorBox({ error }: { error: Error | undefined | null }) {
  if (!error) return null;
  const status = error instanceof ApiError && error.status ? ` (${error.status})` : "";
  return (
    <p class="error" role="alert">
      {error.message}
      {status}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return <p class="muted">Loading {what}…</p>;
}

/**
 * A button for one server action: it shows the server's answer (or error)
 * next to itself, and calls `done` after success so the page reloads.
 */
export function Action(props: {
  label: string;
  run: () => Promise<unknown>;
  done?: () => void;
  ok?: string;
  confirm?: string;
  kind?: "primary" | "danger";
  disabled?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string }>();
  const click = async () => {
    if (props.confirm && !confirm(props.confirm)) return;
    setBusy(true);
    setMsg(undefined);
    try {
      await props.run();
      setMsg({ ok: true, text: props.ok ?? `${props.label}: done` });
      props.done?.();
    } catch (e) {
      setMsg({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button type="button" class={props.kind ?? ""} disabled={busy || props.disabled} onClick={click}>
        {props.label}
      </button>
      {msg && (
        <span class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>
          {msg.text}
        </span>
      )}
    </span>
  );
}

/** An instant in the workflow's zone, UTC on hover. */
export function Time({ ms, tz }: { ms: number | null | undefined; tz: string }) {
  if (ms === null || ms === undefined) return <span class="muted">—</span>;
  return (
    <time dateTime={utc(ms)} title={`${utc(ms)} (UTC)`}>
      {inZone(ms, tz)}
    </time>
  );
}

export function State({ state }: { state: string | null | undefined }) {
  if (!state) return <span class="muted">—</span>;
  return <span class={`state s-${state}`}>{state.replace(/_/g, " ")}</span>;
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Tidemark`;
  }, [props.title]);
  return (
    <section class="page">
      <header class="page-head">
        <h1 ref={ref}>{props.title}</h1>
        {props.actions && <div class="page-actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** "Load more" paging for long lists. */
export function More({ more }: { more: (() => Promise<void>) | null }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  if (!more) return null;
  const click = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await more();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <p>
      <button type="button" disabled={busy} onClick={click}>
        {busy ? "Loading…" : "Load more"}
      </button>
      <ErrorBox error={error} />
    </p>
  );
}
