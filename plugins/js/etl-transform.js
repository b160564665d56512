// `etl-transform` in JavaScript: aggregates the events of its window per
// user, byte for byte what the Rust `etl-transform` writes.
// Params: `input` (default `events`), `output` (default `user_totals`).
// An empty input is retryable: upstream data may be late.

import * as tidemark from "../../sdk/js/tidemark.js";

export const run = tidemark.task((ctx) => {
  const source = new tidemark.Dataset(ctx.param("input", "events"));
  const sink = new tidemark.Dataset(ctx.param("output", "user_totals"));
  const totals = new Map();
  let rows = 0;
  for (const entry of source.scanWindow(ctx.window)) {
    const event = entry.json();
    const total = totals.get(event.user) ?? { count: 0, sum: 0 };
    total.count += 1;
    total.sum += event.amount;
    totals.set(event.user, total);
    rows += 1;
  }
  if (rows === 0) {
    throw new tidemark.Retryable(`no input rows for window ${ctx.window} in \`${source.name}\``);
  }
  // Sorted like Rust's BTreeMap (by UTF-16 code unit; keys here are ASCII).
  for (const user of [...totals.keys()].sort()) {
    sink.putJson(user, totals.get(user));
  }
  tidemark.log.info(`aggregated ${rows} events into ${totals.size} users for ${ctx.window}`);
  return `${totals.size} users from ${rows} events`;
});
