// `etl-load` in JavaScript: rolls the per-user totals of its window up into
// the `window` row of `summary`, byte for byte what the Rust `etl-load`
// writes. Params: `input` (default `user_totals`), `output` (default
// `summary`). An empty input is retryable: upstream data may be late.

import * as tidemark from "../../sdk/js/tidemark.js";

export const run = tidemark.task((ctx) => {
  const source = new tidemark.Dataset(ctx.param("input", "user_totals"));
  const sink = new tidemark.Dataset(ctx.param("output", "summary"));
  const w = ctx.window;
  const summary = { window_start: w.start, window_end: w.end, users: 0, events: 0, amount: 0 };
  for (const entry of source.scanWindow(w)) {
    const total = entry.json();
    summary.users += 1;
    summary.events += total.count;
    summary.amount += total.sum;
  }
  if (summary.users === 0) {
    throw new tidemark.Retryable(`no input rows for window ${w} in \`${source.name}\``);
  }
  sink.putJson("window", summary);
  const line = `summary: ${summary.users} users, ${summary.events} events, amount ${summary.amount}`;
  tidemark.log.info(`${line} for ${w}`);
  return line;
});
