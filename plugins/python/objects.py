"""`objects` in Python: writes a window's output to object storage, two
objects derived from the window, and optionally reads an upstream task's
published output for the same window first.

Params:
- `container`: the connection to write to (default `lake`);
- `upstream`: `workflow/task` whose output for this window is read (a
  retryable error if it published nothing yet); its objects are checked
  with `info` and `read_range`, and its published manifests counted with
  `list`.
"""

import json

import tidemark


def run(ctx: tidemark.Context) -> str:
    lake = tidemark.Container(ctx.param("container", "lake"))
    w = ctx.window
    read = 0
    listed = 0
    upstream = ctx.param("upstream")
    if upstream is not None:
        wf, sep, task = upstream.partition("/")
        if not sep:
            raise tidemark.Fatal("upstream must be workflow/task")
        out = lake.output(wf, task, w.start)
        if out is None:
            raise tidemark.Retryable(f"{upstream} has no output for this window yet")
        for o in out.objects:
            data = lake.read(o.key)
            meta = lake.info(o.key)
            if meta is None or meta.size != o.size or len(data) != o.size:
                raise tidemark.Fatal(f"{o.key}: size differs from the manifest")
            if lake.read_range(o.key, 1, 4) != data[1:4]:
                raise tidemark.Fatal(f"{o.key}: read_range differs from read")
            read += len(data)
        listed = sum(
            1 for o in lake.list(f"{wf}/{task}/") if o.name.endswith("/_manifest.json")
        )
    if lake.info("no/such/object") is not None:
        raise tidemark.Fatal("info found an object that does not exist")
    # Written, then dropped: not part of the output.
    lake.write("scratch.tmp", b"discarded")
    lake.discard("scratch.tmp")
    lake.write("part-0.txt", f"window {w.start}\n")
    summary = {"window_start": w.start, "window_end": w.end, "read": read}
    lake.write("part-1.json", json.dumps(summary, separators=(",", ":")).encode())
    tidemark.info(f"wrote 2 objects for {w}")
    return f"2 objects, read {read} bytes, {listed} manifests"


WitWorld = tidemark.world(run)
