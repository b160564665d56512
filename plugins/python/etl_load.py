"""`etl-load` in Python: rolls the per-user totals of its window up into the
`window` row of `summary`, byte for byte what the Rust `etl-load` writes.

Params: `input` (default `user_totals`), `output` (default `summary`).
An empty input is retryable: upstream data may be late.
"""

import tidemark


def run(ctx: tidemark.Context) -> str:
    source = tidemark.Dataset(ctx.param("input", "user_totals"))
    sink = tidemark.Dataset(ctx.param("output", "summary"))
    w = ctx.window
    summary = {
        "window_start": w.start,
        "window_end": w.end,
        "users": 0,
        "events": 0,
        "amount": 0,
    }
    for entry in source.scan_window(w):
        total = entry.json()
        summary["users"] += 1
        summary["events"] += total["count"]
        summary["amount"] += total["sum"]
    if summary["users"] == 0:
        raise tidemark.Retryable(f"no input rows for window {w} in `{source.name}`")
    sink.put_json("window", summary)
    line = (
        f"summary: {summary['users']} users, {summary['events']} events, "
        f"amount {summary['amount']}"
    )
    tidemark.info(f"{line} for {w}")
    return line


WitWorld = tidemark.world(run)
