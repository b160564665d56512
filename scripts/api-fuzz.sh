#!/usr/bin/env bash
# OpenAPI conformance and fuzzing of the real daemon with schemathesis
# (PyPI): zero 5xx, every status code, content type, header and body as
# documented (response_schema_conformance validates every body against its
# schema). Runs as a tenant and as the admin. Called by scripts/test.sh
# after the build; prints the number of generated cases.
#
# Random ids and names only ever reach 404s, and a random DELETE can revoke
# the very token the run uses: so objects are created first and every
# operation with path parameters gets real ones (a destructive operation its
# own throwaway object), which makes each operation answer 2xx bodies too.
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

# Objects for the path parameters, and the schemathesis configuration
# that pins them per operation id.
cfg="$data/schemathesis.toml"
python3 - "$url" "$(cat "$data/state/default-token")" fuzz-admin-token \
    "$target/plugins/wasm32-wasip2/release/hello.wasm" >"$cfg" <<'PY'
import json, sys, urllib.request
url, tenant, admin, hello = sys.argv[1:5]

def call(method, path, token, body=None, ctype="application/json"):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

doomed_wf = {"name": "fuzz-doomed", "paused": True, "tasks": [{"name": "t", "plugin": "hello"}],
             "schedule": {"cron": "0 0 * * *", "start": "2024-01-01"}}
call("POST", "/api/v1/workflows", tenant, doomed_wf)
run = call("POST", "/api/v1/workflows/heartbeat/trigger", tenant, {"seeded": True})["run_id"]
backfill = call("POST", "/api/v1/backfills", tenant, {
    "workflow": "heartbeat", "start": "2024-02-01T00:00:00Z", "end": "2024-02-01T00:05:00Z"})["backfill"]["id"]
token = call("POST", "/api/v1/tokens", tenant, {"label": "doomed"})["id"]
call("PUT", "/api/v1/plugins/fuzz-doomed", tenant, open(hello, "rb").read(), "application/octet-stream")
call("POST", "/api/v1/tenants", admin, {"name": "fuzzed"})
call("POST", "/api/v1/tenants", admin, {"name": "fuzz-doomed"})
tenant_token = call("POST", "/api/v1/tenants/fuzzed/tokens", admin, {"label": "doomed"})["id"]

pins = {
    "get_run": {"id": run}, "retry_run": {"id": run}, "cancel_run": {"id": run}, "run_logs": {"id": run},
    "get_backfill": {"id": backfill}, "list_backfill_windows": {"id": backfill},
    "backfill_strip": {"id": backfill}, "pause_backfill": {"id": backfill},
    "resume_backfill": {"id": backfill}, "cancel_backfill": {"id": backfill},
    "retry_failed_windows": {"id": backfill},
    "get_workflow": {"name": "etl"}, "list_workflow_versions": {"name": "etl"},
    "list_runs": {"name": "etl"}, "pause_workflow": {"name": "heartbeat"},
    "unpause_workflow": {"name": "heartbeat"}, "run_window": {"name": "heartbeat"},
    "trigger": {"name": "heartbeat"}, "delete_workflow": {"name": "fuzz-doomed"},
    "list_plugin_versions": {"name": "hello"}, "push_plugin": {"name": "fuzz-pushed"},
    "delete_plugin_version": {"name": "fuzz-doomed", "version": 1},
    "revoke_token": {"id": token},
    "get_partition": {"dataset": "events", "window": "1704067200000"},
    "delete_tenant": {"name": "fuzz-doomed"}, "tenant_quotas": {"name": "fuzzed"},
    "set_quotas": {"name": "fuzzed"}, "admin_list_tokens": {"name": "fuzzed"},
    "admin_create_token": {"name": "fuzzed"},
    "admin_revoke_token": {"name": "fuzzed", "id": tenant_token},
}
for op, params in pins.items():
    print("[[operations]]")
    print(f'include-operation-id = "{op}"')
    print("parameters = { " + ", ".join(f'"path.{k}" = {json.dumps(v)}' for k, v in params.items()) + " }")
    print()
PY

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
total=0
for who in tenant admin; do
    if [ "$who" = tenant ]; then token=$(cat "$data/state/default-token"); else token=fuzz-admin-token; fi
    log="$data/st-$who.log"
    # Run from the temporary directory: schemathesis keeps its caches
    # (.schemathesis/, .hypothesis/) in the working directory, which would
    # otherwise be the source tree (issue #14).
    if ! (cd "$data" && st --config-file "$cfg" run "$url/api/v1/openapi.json" --url "$url" -H "Authorization: Bearer $token" \
        --checks "$checks" --max-examples "${FUZZ_EXAMPLES:-25}" --seed 1) >"$log" 2>&1; then
        cat "$log"
        echo "schemathesis found failures (as $who)"
        exit 1
    fi
    cases=$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$log" | tail -1)
    echo "schemathesis as $who: ${cases:-?} cases, no failures"
    # Which operations never answered 2xx (the other role's show as 403).
    sed -n '/^Warnings:/,/^$/p' "$log"
    total=$((total + ${cases:-0}))
done
echo "schemathesis: $total cases in all"
