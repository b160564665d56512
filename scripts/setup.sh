#!/usr/bin/env bash
# Installs what building Tidemark needs beyond a Rust toolchain: the
# wasm32-wasip2 target for the Rust plugins, componentize-py (PyPI) and
# componentize-js (npm) for the Python and JavaScript plugins, the web
# console's npm packages (with openapi-typescript, which generates its API
# types), openapi-python-client (PyPI, in a venv under the cache directory)
# for the generated Python client and its test, SeaweedFS (PyPI, the real
# S3 server of the object-storage tests), Azurite (npm, their Azure Blob
# emulator), Debian's postgresql (the PostgreSQL store's tests start a
# private cluster of it), and Debian's chromium for
# the console's browser tests (skipped with SETUP_NO_BROWSER=1). Safe to
# run repeatedly.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "error: cargo not found; install Rust with rustup first" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: installing the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi
for tool in python3 npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found; the Python/JavaScript plugins need it (apt install python3-venv npm)" >&2
        exit 1
    fi
done
bash "$(dirname "$0")/guests.sh" --tools-only
bash "$(dirname "$0")/console.sh" --deps-only
bash "$(dirname "$0")/pyclient.sh" --deps-only
bash "$(dirname "$0")/seaweedfs.sh" >/dev/null
bash "$(dirname "$0")/azurite.sh" >/dev/null
bash "$(dirname "$0")/postgres.sh" >/dev/null

if [ "${SETUP_NO_BROWSER:-}" != 1 ] && [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Debian's chromium for the console tests" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    if ! { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >&2; }; then
        echo "error: could not install chromium (apt-get install chromium); the console tests need it" >&2
        exit 1
    fi
fi
