#!/usr/bin/env bash
# Builds Tidemark and starts the daemon with its embedded sled store under
# ./data/tidemark, the example plugins pushed and the example workflows in
# examples/ applied. The newest hourly ETL window runs at once, a heartbeat
# every minute. It also starts the example orders API
# (scripts/orders_api.py, port ORDERS_PORT, default 8765), allows the
# default tenant to reach it, creates the `lake` connection (kind fs) and
# applies examples/orders/orders.toml, whose newest window then runs too.
# Stop it with Ctrl-C (graceful shutdown; the orders API stops with it).
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser is only for the console tests.
SETUP_NO_BROWSER=1 bash scripts/setup.sh

cargo build --release -p tidemark --bin tidemark
# The test crate's build script compiles the plugins.
cargo build --release -p tidemark-tests
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
wasm="$target/plugins/wasm32-wasip2/release"
plugins="$target/example-plugins"
mkdir -p "$plugins"
cp "$wasm/hello.wasm" "$wasm"/etl_*.wasm "$wasm"/orders_*.wasm "$plugins/"

data="${DATA_DIR:-data/tidemark}"
listen="${LISTEN:-127.0.0.1:7878}"
orders_port="${ORDERS_PORT:-8765}"
tidemark="$target/release/tidemark"

api_pid=""
daemon_pid=""
cleanup() {
    [ -z "$api_pid" ] || kill "$api_pid" 2>/dev/null || true
    [ -z "$daemon_pid" ] || kill -TERM "$daemon_pid" 2>/dev/null || true
}
trap cleanup EXIT
# Background jobs of a script ignore Ctrl-C: pass it on as SIGTERM, which
# the daemon answers with a graceful shutdown.
trap 'cleanup; trap - INT TERM' INT TERM

# Waits until a URL answers.
ready() {
    python3 - "$1" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 120
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).read()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"run.sh: {sys.argv[1]} did not answer")
        time.sleep(0.2)
PY
}

# The API first: on a restart the orders workflow runs its newest window
# as soon as the daemon is up.
python3 scripts/orders_api.py --port "$orders_port" &
api_pid=$!
ready "http://127.0.0.1:$orders_port/healthz"
"$tidemark" serve --data "$data" --listen "$listen" --plugins "$plugins" --workflows examples &
daemon_pid=$!
ready "http://$listen/healthz"

export TIDEMARK_SERVER="http://$listen"
admin="${TIDEMARK_ADMIN_TOKEN:-$(cat "$data/admin-token")}"
token="$(cat "$data/default-token")"
# The orders example: the API's address in the tenant's egress allowlist
# (this replaces the default tenant's list), the `lake` connection, then
# the workflow (its newest window runs at once).
TIDEMARK_TOKEN="$admin" "$tidemark" tenant egress set default "http://127.0.0.1:$orders_port" >/dev/null
if ! TIDEMARK_TOKEN="$token" "$tidemark" connection show lake >/dev/null 2>&1; then
    TIDEMARK_TOKEN="$token" "$tidemark" connection create lake --kind fs --config path=lake >/dev/null
fi
orders="examples/orders/orders.toml"
if [ "$orders_port" != 8765 ]; then
    orders="$data/orders.toml"
    sed "s/127\.0\.0\.1:8765/127.0.0.1:$orders_port/g" examples/orders/orders.toml >"$orders"
fi
TIDEMARK_TOKEN="$token" "$tidemark" apply -f "$orders"

echo "Try, in another terminal:"
echo "  export TIDEMARK_TOKEN=\$(cat $data/default-token)"
echo "  $tidemark runs list etl"
echo "  $tidemark run-window etl 2024-03-01T10:00:00Z"
echo "  $tidemark run-window orders 2024-03-01T10:00:00Z   # then: $data/objects/default/lake/orders/transform/"
wait "$daemon_pid" || true
# After Ctrl-C the first wait returns early; wait for the graceful end.
while kill -0 "$daemon_pid" 2>/dev/null; do wait "$daemon_pid" || true; done
