#!/usr/bin/env bash
# OpenAPI conformance and fuzzing of the real daemon with schemathesis
# (PyPI): zero 5xx, every status code, content type, header and body as
# documented. Runs as a tenant and as the admin. Called by scripts/test.sh
# after the build; prints the number of generated cases.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v st >/dev/null 2>&1 || ! st --version 2>/dev/null | grep -q "4.32.5"; then
    python3 -m pip install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
data=$(mktemp -d)
out="$data/daemon.out"
# The daemon must not outlive the script, however it ends (issue #8): the
# EXIT trap is in place before the daemon starts, waits for it to go, and
# INT/TERM/HUP exit through it (bash skips EXIT traps on fatal signals).
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
TIDEMARK_ADMIN_TOKEN=fuzz-admin-token RUST_LOG=warn "$target/release/tidemark" serve \
    --data "$data/state" --listen 127.0.0.1:0 --plugins "$target/plugins/wasm32-wasip2/release" \
    --workflows examples >"$out" 2>"$data/daemon.err" &
pid=$!
for _ in $(seq 1 100); do
    grep -q "tidemark listening on" "$out" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/^tidemark listening on //p' "$out")
[ -n "$url" ] || { echo "the daemon did not start"; cat "$data/daemon.err"; exit 1; }

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
total=0
for who in tenant admin; do
    if [ "$who" = tenant ]; then token=$(cat "$data/state/default-token"); else token=fuzz-admin-token; fi
    log="$data/st-$who.log"
    # Run from the temporary directory: schemathesis keeps its caches
    # (.schemathesis/, .hypothesis/) in the working directory, which would
    # otherwise be the source tree (issue #14).
    if ! (cd "$data" && st run "$url/api/v1/openapi.json" --url "$url" -H "Authorization: Bearer $token" \
        --checks "$checks" --max-examples "${FUZZ_EXAMPLES:-25}" --seed 1) >"$log" 2>&1; then
        cat "$log"
        echo "schemathesis found failures (as $who)"
        exit 1
    fi
    cases=$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$log" | tail -1)
    echo "schemathesis as $who: ${cases:-?} cases, no failures"
    total=$((total + ${cases:-0}))
done
echo "schemathesis: $total cases in all"
