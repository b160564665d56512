#!/usr/bin/env bash
# Generates the Python client of the REST API (clients/python/generated/,
# not committed) from the committed OpenAPI document docs/openapi.json with
# openapi-python-client (PyPI, pinned), which is installed into a venv under
# the cache directory the first time. After that it works offline: the venv
# also has what the generated client imports (httpx, attrs).
#
#   scripts/pyclient.sh              # generate; prints the venv's python
#   scripts/pyclient.sh --deps-only  # only install the generator
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version=0.29.1
venv="${TIDEMARK_PYCLIENT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tidemark/pyclient-venv}"

if ! "$venv/bin/openapi-python-client" --version 2>/dev/null | grep -q "version: $version\$"; then
    echo "pyclient: installing openapi-python-client $version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "openapi-python-client==$version" >&2
fi
[ "${1:-}" = "--deps-only" ] && exit 0

out="$root/clients/python/generated"
# Regenerated only when the document or the generator's configuration changed.
# (It warns that it skips the TOML form of POST /workflows: the client sends
# definitions as JSON.)
want="$(cat "$root/docs/openapi.json" "$root/clients/python/config.yaml" | sha256sum | cut -c1-16)-$version"
if [ "$(cat "$out/.tidemark-stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$out"
    "$venv/bin/openapi-python-client" generate --path "$root/docs/openapi.json" \
        --config "$root/clients/python/config.yaml" --meta setup \
        --output-path "$out" >&2
    echo "$want" > "$out/.tidemark-stamp"
fi
echo "$venv/bin/python"
