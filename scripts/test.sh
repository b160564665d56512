#!/usr/bin/env bash
# The whole test suite: formatting, lints (host and plugins) and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== fmt"
cargo fmt --all -- --check
(cd plugins && cargo fmt -- --check)

echo "== clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
(cd plugins && cargo clippy --release --target wasm32-wasip2 --target-dir "$(cd .. && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/plugins" -- -D warnings)

echo "== build"
# The black-box tests run the real binary.
cargo build --release --workspace --bins

echo "== test"
cargo test --release --workspace

echo "== api fuzz (schemathesis against the real daemon)"
bash scripts/api-fuzz.sh
