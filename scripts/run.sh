#!/usr/bin/env bash
# Builds Tidemark and runs the example ETL pipeline (extract -> transform ->
# load) for one day of hourly windows with the local task harness, keeping
# its datasets in a sled store under ./data/example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo build --release -p tidemark --bin tidemark
# The test crate's build script compiles the plugins.
cargo build --release -p tidemark-tests
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/release/tidemark"
wasm="$target/plugins/wasm32-wasip2/release"
data="${DATA_DIR:-data/example}"
mkdir -p "$data"

day="${DAY:-2024-03-01}"
for hour in $(seq -w 0 23); do
    start="${day}T${hour}:00:00Z"
    end="$(date -u -d "$start + 1 hour" +%Y-%m-%dT%H:%M:%SZ)"
    for task in extract transform load; do
        "$bin" task run "$wasm/etl_$task.wasm" --task "$task" --workflow etl \
            --window-start "$start" --window-end "$end" --data "$data" >/dev/null
    done
    echo "window $start: extract, transform, load succeeded"
done
echo "The last window's log:"
"$bin" task run "$wasm/etl_load.wasm" --task load --workflow etl \
    --window-start "${day}T23:00:00Z" --window-end "$(date -u -d "${day}T23:00:00Z + 1 hour" +%Y-%m-%dT%H:%M:%SZ)" --data "$data"
