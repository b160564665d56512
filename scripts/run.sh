#!/usr/bin/env bash
# Builds Tidemark and starts the daemon with its embedded sled store under
# ./data/tidemark, the example plugins pushed and the example workflows in
# examples/ applied. The newest hourly ETL window runs at once, a heartbeat
# every minute. Stop it with Ctrl-C (graceful shutdown).
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
cp "$wasm/hello.wasm" "$wasm"/etl_*.wasm "$plugins/"

data="${DATA_DIR:-data/tidemark}"
echo "Try, in another terminal:"
echo "  export TIDEMARK_TOKEN=\$(cat $data/default-token)"
echo "  $target/release/tidemark runs list etl"
echo "  $target/release/tidemark run-window etl 2024-03-01T10:00:00Z"
exec "$target/release/tidemark" serve --data "$data" \
    --listen "${LISTEN:-127.0.0.1:7878}" --plugins "$plugins" --workflows examples
