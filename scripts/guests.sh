#!/usr/bin/env bash
# Builds the Python (plugins/python) and JavaScript (plugins/js) plugins into
# components of the tidemark:task world, straight from wit/ (no copy of the
# WIT). A plugin whose source has the line `# world: task-with-http`
# (Python) or `// world: task-with-http` (JavaScript) is built for that
# world instead (wit/http.wit: `task` plus wasi:http/outgoing-handler), which
# the SDKs' HTTP helpers need. The pinned tools are installed on first use into TIDEMARK_TOOLS
# (default ~/.cache/tidemark/tools): componentize-py from PyPI, and
# componentize-js with rolldown from npm (versions in plugins/js/package.json
# and its lock file). A component is rebuilt only when its inputs changed.
#
#   scripts/guests.sh OUT_DIR       # builds OUT_DIR/{py,js}_NAME.wasm
#   scripts/guests.sh --tools-only  # only installs the tools
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
py_version=0.25.1

log() { echo "guests: $*" >&2; }

venv="$tools/componentize-py-$py_version"
if [ ! -x "$venv/bin/componentize-py" ]; then
    log "installing componentize-py $py_version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$py_version"
fi

lock_hash="$(cat "$root/plugins/js/package.json" "$root/plugins/js/package-lock.json" | sha256sum | cut -c1-16)"
node="$tools/node-$lock_hash"
if [ ! -x "$node/node_modules/.bin/componentize-js" ]; then
    log "installing componentize-js and rolldown into $node"
    rm -rf "$node"
    mkdir -p "$node"
    cp "$root/plugins/js/package.json" "$root/plugins/js/package-lock.json" "$node/"
    (cd "$node" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

[ "${1:-}" = "--tools-only" ] && exit 0
out="${1:?usage: scripts/guests.sh OUT_DIR | --tools-only}"
mkdir -p "$out"

# Stamp of everything a component depends on; equal stamp = up to date.
stamp() { cat "$@" "$root"/wit/*.wit "$root"/wit/deps/*.wit | sha256sum | cut -d' ' -f1; }

# The world a plugin source asks for (see above).
world_of() {
    if grep -qE '^(#|//) *world: *task-with-http *$' "$1"; then
        echo task-with-http
    else
        echo task
    fi
}

build() { # NAME STAMP COMMAND...
    local name="$1" want="$2"
    shift 2
    if [ -f "$out/$name.wasm" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    log "building $name"
    "$@"
    echo "$want" > "$out/$name.stamp"
}

# componentize-py imports the modules with its own interpreter, which writes
# __pycache__/ beside them and ignores PYTHONDONTWRITEBYTECODE; it reads
# copies in OUT_DIR so the source tree stays clean (issue #14).
py_src="$out/py-src"
rm -rf "$py_src"
mkdir -p "$py_src/plugins" "$py_src/sdk"
cp "$root"/plugins/python/*.py "$py_src/plugins/"
cp "$root"/sdk/python/*.py "$py_src/sdk/"
for src in "$root"/plugins/python/*.py; do
    module="$(basename "$src" .py)"
    world="$(world_of "$src")"
    build "py_$module" "$(stamp "$src" "$root"/sdk/python/*.py <(echo "$py_version $world"))" \
        "$venv/bin/componentize-py" -d "$root/wit" -w "$world" componentize \
        -p "$py_src/plugins" -p "$py_src/sdk" "$module" -o "$out/py_$module.wasm"
done

for src in "$root"/plugins/js/*.js; do
    name="$(basename "$src" .js)"
    name="${name//-/_}"
    bundle="$out/js_$name.bundle.js"
    world="$(world_of "$src")"
    # A `task` plugin is built without StarlingMonkey's `http` feature, so
    # it imports no wasi:http; `task-with-http` imports it (fetch, http.js).
    # No plugin serves incoming requests: `fetch-event` is always off.
    if [ "$world" = task ]; then off="http fetch-event"; else off="fetch-event"; fi
    build "js_$name" "$(stamp "$src" "$root"/sdk/js/*.js <(echo "$lock_hash $world"))" bash -c '
        set -euo pipefail
        "$1/node_modules/.bin/rolldown" "$2" -o "$3" -f esm \
            -e tidemark:task/log@0.1.0,tidemark:task/dataset@0.1.0,tidemark:task/checkpoint@0.1.0,tidemark:task/blobstore@0.1.0,wasi:http/outgoing-handler@0.2.12,wasi:http/types@0.2.12 \
            > "$3.log" 2>&1 || { cat "$3.log" >&2; exit 1; }
        # shellcheck disable=SC2086 # $7 is a list of features
        "$1/node_modules/.bin/componentize-js" "$3" --wit "$4" -n "$6" \
            -d $7 -o "$5" >&2
    ' _ "$node" "$src" "$bundle" "$root/wit" "$out/js_$name.wasm" "$world" "$off"
done
