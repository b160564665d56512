// A backfill's state strip (like Dagster's partition health bar): each
// column is one time bucket, its colours the share of windows per state.
// The server counts per bucket, so the browser never loads window rows,
// however many there are. Clicking a column zooms into its time range.
import { useState } from "preact/hooks";
import { api, type StripBucket } from "./api";
import { inZone, utc } from "./time";
import { ErrorBox, useLoad } from "./ui";

const BUCKETS = 300;
const H = 44;
const MIN_ALERT = 5;
const ORDER: (keyof Omit<StripBucket, "start" | "end">)[] = [
  "failed",
  "cancelled",
  "running",
  "succeeded",
  "skipped",
  "pending",
];

function total(b: StripBucket): number {
  return ORDER.reduce((n, k) => n + b[k], 0);
}

/**
 * `windows` (how many the backfill has for this workflow) caps the buckets,
 * so a small backfill gets one column per window; `refresh` changes when
 * the backfill's state does, for a last fetch after it ends.
 */
/**
 * Each state's share of the column's height. Failed and running windows get
 * at least `MIN_ALERT` so that one failure in thousands still shows; the
 * other states share the rest in proportion.
 */
function heights(b: StripBucket, n: number): [string, number][] {
  const alert = (k: string) => k === "failed" || k === "running";
  const present = ORDER.filter((k) => b[k] > 0);
  const boosted = present.map((k) => (alert(k) ? Math.max(MIN_ALERT, (b[k] / n) * H) : 0));
  const rest = present.filter((k) => !alert(k)).reduce((a, k) => a + b[k], 0);
  const sum = boosted.reduce((a, h) => a + h, 0);
  // The minimums can add up past the column; then alerts fill it in proportion.
  const reserved = rest === 0 || sum > H ? H : sum;
  return present.map((k, i) => [
    k,
    alert(k) ? (boosted[i] / sum) * reserved : (b[k] / rest) * (H - reserved),
  ]);
}

export function StateStrip(props: {
  id: number;
  workflow: string;
  tz: string;
  live: boolean;
  windows: number;
  refresh: string;
}) {
  const [zoom, setZoom] = useState<{ from: number; to: number }[]>([]);
  const range = zoom.at(-1);
  const strip = useLoad(
    async () => {
      const t0 = performance.now();
      const s = await api.strip(props.id, {
        workflow: props.workflow,
        from: range?.from,
        to: range?.to,
        buckets: Math.max(1, Math.min(BUCKETS, props.windows)),
      });
      return { strip: s, ms: performance.now() - t0 };
    },
    [props.id, props.workflow, range?.from, range?.to, props.refresh, props.windows],
    props.live ? 3000 : undefined,
  );
  const s = strip.data?.strip;
  const zoomInto = (b: StripBucket) => {
    if (b.end_ms - b.start_ms > 1) setZoom([...zoom, { from: b.start_ms, to: b.end_ms }]);
  };
  const windows = s ? s.buckets.reduce((n, b) => n + total(b), 0) : 0;
  const w = s?.buckets.length ?? 1;
  return (
    <figure class="strip" data-workflow={props.workflow}>
      <figcaption>
        <strong>{props.workflow}</strong>
        {s && (
          <span class="muted" role="status">
            {" "}
            {windows.toLocaleString("en")} windows in {s.buckets.length} buckets ·{" "}
            {inZone(s.from_ms, props.tz)} – {inZone(s.to_ms, props.tz)} · counted in {Math.round(strip.data!.ms)} ms
          </span>
        )}
        {zoom.length > 0 && (
          <button type="button" onClick={() => setZoom(zoom.slice(0, -1))}>
            Zoom out
          </button>
        )}
      </figcaption>
      <ErrorBox error={strip.error} />
      {s && (
        <svg
          class="strip-bar"
          viewBox={`0 0 ${w} ${H}`}
          preserveAspectRatio="none"
          role="img"
          aria-label={`State strip of ${props.workflow}: ${windows} windows`}
          data-buckets={s.buckets.length}
          data-windows={windows}
        >
          {s.buckets.map((b, i) => {
            const n = total(b);
            let y = 0;
            return (
              <g
                key={b.start_ms}
                class="strip-col"
                tabIndex={0}
                role="button"
                aria-label={`Zoom into ${inZone(b.start_ms, props.tz)} – ${inZone(b.end_ms, props.tz)}`}
                onClick={() => zoomInto(b)}
                onKeyDown={(e) => {
                  if (e.key === "Enter" || e.key === " ") {
                    e.preventDefault();
                    zoomInto(b);
                  }
                }}
              >
                <title>
                  {`${inZone(b.start_ms, props.tz)} – ${inZone(b.end_ms, props.tz)} (${utc(b.start_ms)} UTC)\n` +
                    ORDER.filter((k) => b[k] > 0)
                      .map((k) => `${k}: ${b[k]}`)
                      .join(", ")}
                </title>
                <rect x={i} y={0} width={1} height={H} class="strip-empty" />
                {n > 0 &&
                  heights(b, n).map(([k, h]) => {
                    const r = <rect key={k} x={i} y={y} width={1} height={h} class={`s-${k}`} />;
                    y += h;
                    return r;
                  })}
              </g>
            );
          })}
        </svg>
      )}
      <p class="legend small">
        {ORDER.map((k) => (
          <span key={k}>
            <i class={`swatch s-${k}`} /> {k}
          </span>
        ))}
      </p>
    </figure>
  );
}
