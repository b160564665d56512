"""`etl-transform` in Python: aggregates the events of its window per user,
byte for byte what the Rust `etl-transform` writes.

Params: `input` (default `events`), `output` (default `user_totals`).
An empty input is retryable: upstream data may be late.
"""

import tidemark


def run(ctx: tidemark.Context) -> str:
    source = tidemark.Dataset(ctx.param("input", "events"))
    sink = tidemark.Dataset(ctx.param("output", "user_totals"))
    totals = {}
    rows = 0
    for entry in source.scan_window(ctx.window):
        event = entry.json()
        total = totals.setdefault(event["user"], {"count": 0, "sum": 0})
        total["count"] += 1
        total["sum"] += event["amount"]
        rows += 1
    if rows == 0:
        raise tidemark.Retryable(
            f"no input rows for window {ctx.window} in `{source.name}`"
        )
    for user in sorted(totals):
        sink.put_json(user, totals[user])
    tidemark.info(f"aggregated {rows} events into {len(totals)} users for {ctx.window}")
    return f"{len(totals)} users from {rows} events"


WitWorld = tidemark.world(run)
