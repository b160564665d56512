// `objects` in JavaScript: writes a window's output to object storage, two
// objects derived from the window, and optionally reads an upstream task's
// published output for the same window first; what the Python `objects`
// does, byte for byte.
//
// Params: `container` (default `lake`); `upstream`, `workflow/task` whose
// output for this window is read (retryable if it published nothing yet),
// its objects checked with `info` and `readRange`, its published
// manifests counted with `list`.

import * as tidemark from "../../sdk/js/tidemark.js";

export const run = tidemark.task((ctx) => {
  const lake = new tidemark.Container(ctx.param("container", "lake"));
  const w = ctx.window;
  let read = 0;
  let listed = 0;
  const upstream = ctx.param("upstream");
  if (upstream !== undefined) {
    const slash = upstream.indexOf("/");
    if (slash < 0) throw new tidemark.Fatal("upstream must be workflow/task");
    const wf = upstream.slice(0, slash);
    const task = upstream.slice(slash + 1);
    const out = lake.output(wf, task, w.start);
    if (out === undefined) {
      throw new tidemark.Retryable(`${upstream} has no output for this window yet`);
    }
    for (const o of out.objects) {
      const data = lake.read(o.key);
      const meta = lake.info(o.key);
      if (meta === undefined || meta.size !== o.size || data.length !== o.size) {
        throw new tidemark.Fatal(`${o.key}: size differs from the manifest`);
      }
      const part = lake.readRange(o.key, 1, 4);
      if (part.length !== Math.min(3, Math.max(0, data.length - 1)) || part.some((b, i) => b !== data[1 + i])) {
        throw new tidemark.Fatal(`${o.key}: readRange differs from read`);
      }
      read += data.length;
    }
    listed = lake.list(`${wf}/${task}/`).filter((o) => o.name.endsWith("/_manifest.json")).length;
  }
  if (lake.info("no/such/object") !== undefined) {
    throw new tidemark.Fatal("info found an object that does not exist");
  }
  // Written, then dropped: not part of the output.
  lake.write("scratch.tmp", "discarded");
  lake.discard("scratch.tmp");
  lake.write("part-0.txt", `window ${w.start}\n`);
  lake.write("part-1.json", JSON.stringify({ window_start: w.start, window_end: w.end, read }));
  tidemark.log.info(`wrote 2 objects for ${w}`);
  return `2 objects, read ${read} bytes, ${listed} manifests`;
});
