#!/usr/bin/env bash
# Builds the web console (console/, TypeScript + Preact + Vite) into OUT_DIR,
# which the daemon embeds. The npm packages are installed from the lock file
# (npm ci) only when package.json or package-lock.json changed. The build
# first generates src/generated/api.ts (not committed) from the committed
# OpenAPI document docs/openapi.json with openapi-typescript, so `tsc` fails
# when the console and the API disagree.
#
#   scripts/console.sh OUT_DIR      # type-check and build into OUT_DIR
#   scripts/console.sh --deps-only  # only install the packages
set -euo pipefail
cd "$(dirname "$0")/../console"

if ! command -v npm >/dev/null; then
    echo "console: npm not found; the web console needs Node.js 20+ and npm (apt install nodejs npm)" >&2
    exit 1
fi
want="$(cat package.json package-lock.json | sha256sum | cut -c1-16)"
if [ "$(cat node_modules/.tidemark-lock 2>/dev/null)" != "$want" ]; then
    echo "console: installing npm packages (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$want" > node_modules/.tidemark-lock
fi
[ "${1:-}" = "--deps-only" ] && exit 0
out="${1:?usage: scripts/console.sh OUT_DIR | --deps-only}"
TIDEMARK_CONSOLE_OUT="$out" npm run --silent build >&2
