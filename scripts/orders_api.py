#!/usr/bin/env python3
"""A small orders API for the `orders` example workflow (stdlib only).

Serves synthetic, deterministic orders: every hour since the epoch has its
own fixed set, so a window always reads the same records, and a test can
compare what Tidemark published with what this server answers.

    GET /v1/orders?from=MS&to=MS[&cursor=N][&limit=N]
        -> {"orders": [...], "next": "N" | null}
    GET /healthz -> ok

Orders with `created_ms` in [from, to), oldest first, `limit` per page
(default 25, at most 100); pass `next` back as `cursor` for the next page.
Each order: id, customer, amount_cents, currency, status ("paid" or
"cancelled"), created_ms.

    python3 scripts/orders_api.py [--port 8765]   # 0: any free port

It prints `orders API listening on http://127.0.0.1:PORT` once it accepts
connections.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HOUR_MS = 3_600_000
CURRENCIES = ("EUR", "USD", "GBP")
MAX_SPAN_HOURS = 24 * 31


def orders_of_hour(h):
    """The orders created in hour `h` (hours since the epoch)."""
    count = 10 + (h * 7) % 23
    out = []
    for i in range(count):
        out.append(
            {
                "id": f"o-{h}-{i:03d}",
                "customer": f"c{(h * 13 + i * 7) % 40:03d}",
                "amount_cents": 100 + (h * 7919 + i * 104729) % 50000,
                "currency": CURRENCIES[(h + i) % 3],
                "status": "cancelled" if (h + i) % 5 == 0 else "paid",
                "created_ms": h * HOUR_MS + i * (HOUR_MS // count),
            }
        )
    return out


def orders_between(start, end):
    """Every order with `created_ms` in [start, end), oldest first."""
    out = []
    for h in range(start // HOUR_MS, -(-end // HOUR_MS)):
        out.extend(o for o in orders_of_hour(h) if start <= o["created_ms"] < end)
    return out


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, message):
        self._send(status, json.dumps({"error": message}))

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/healthz":
            return self._send(200, "ok", "text/plain")
        if url.path != "/v1/orders":
            return self._error(404, f"no route {url.path}")
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            start, end = int(q["from"]), int(q["to"])
            cursor = int(q.get("cursor", "0"))
            limit = int(q.get("limit", "25"))
        except (KeyError, ValueError):
            return self._error(400, "from and to (ms) are required; cursor and limit are numbers")
        if not (0 <= start < end) or end - start > MAX_SPAN_HOURS * HOUR_MS:
            return self._error(400, "need 0 <= from < to, at most 31 days apart")
        if not (1 <= limit <= 100) or cursor < 0:
            return self._error(400, "limit is 1..100, cursor >= 0")
        found = orders_between(start, end)
        page = found[cursor : cursor + limit]
        more = cursor + limit < len(found)
        body = {"orders": page, "next": str(cursor + limit) if more else None}
        self._send(200, json.dumps(body))

    def log_message(self, fmt, *args):
        # Quiet by default: run.sh shares the terminal with the daemon.
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print(f"orders API listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
