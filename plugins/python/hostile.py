"""A misbehaving Python task for the limit tests. Param `mode`:
- `spin`: loops forever (fuel or the deadline must stop it);
- `hog`: allocates 1 MiB blocks until memory runs out (the memory cap);
- `ok` (default): succeeds, to measure the per-run cost of Python.
"""

import tidemark


def run(ctx: tidemark.Context) -> str:
    mode = ctx.param("mode", "ok")
    if mode == "spin":
        n = 0
        while True:
            n += 1
    if mode == "hog":
        blocks = []
        while True:
            blocks.append(bytearray(1 << 20))
    return "ok"


WitWorld = tidemark.world(run)
