// A misbehaving JavaScript task for the limit tests. Param `mode`:
// `spin` loops forever (fuel or the deadline must stop it), `hog` allocates
// 1 MiB buffers until memory runs out (the memory cap), `ok` (default)
// succeeds, to measure the per-run cost of JavaScript.

import * as tidemark from "../../sdk/js/tidemark.js";

export const run = tidemark.task((ctx) => {
  const mode = ctx.param("mode", "ok");
  if (mode === "spin") {
    let n = 0;
    for (;;) n += 1;
  }
  if (mode === "hog") {
    const blocks = [];
    for (;;) blocks.push(new Uint8Array(1 << 20).fill(1));
  }
  return "ok";
});
