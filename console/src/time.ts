// Times are shown in the workflow's time zone; the UTC instant is on hover.

const FIELDS: Intl.DateTimeFormatOptions = {
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
};

const formats = new Map<string, Intl.DateTimeFormat>();

function format(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat("sv-SE", { ...FIELDS, timeZone: tz, timeZoneName: "short" });
    } catch {
      // An unknown zone (older browser data): UTC rather than nothing.
      f = format("UTC");
    }
    formats.set(tz, f);
  }
  return f;
}

/** `2024-03-01 10:00:00 CET` in `tz`. */
export function inZone(ms: number, tz: string): string {
  return format(tz).format(new Date(ms));
}

export function utc(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

/** The offset of `tz` from UTC at instant `t`, in ms. */
function offset(t: number, tz: string): number {
  const parts = new Intl.DateTimeFormat("en-US", { ...FIELDS, timeZone: tz, hourCycle: "h23" }).formatToParts(
    new Date(t),
  );
  const p = Object.fromEntries(parts.map((x) => [x.type, Number(x.value)]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(t / 1000) * 1000;
}

/** The instant the date `YYYY-MM-DD` begins in `tz`. */
export function zonedMidnight(date: string, tz: string): number {
  return zonedInstant(`${date}T00:00`, tz);
}

/** The instant of the wall-clock time `YYYY-MM-DDTHH:MM` in `tz`. */
export function zonedInstant(local: string, tz: string): number {
  const [date, time = "00:00"] = local.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  // Two steps settle the offset, also next to a DST change.
  const first = wall - offset(wall, tz);
  return wall - offset(first, tz);
}
