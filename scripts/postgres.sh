#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries are here (Debian's `postgresql`,
# installed with apt-get when missing) for the PostgreSQL store's tests,
# which start a private cluster of their own (tests/src/pg.rs), and prints
# the directory of the newest version's binaries. Safe to run repeatedly.
#
#   scripts/postgres.sh        # install if missing, print e.g. /usr/lib/postgresql/15/bin
set -euo pipefail

newest() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -n 1
}

bin="$(newest || true)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
    echo "postgres: installing Debian's postgresql" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    if ! { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q postgresql >&2; }; then
        echo "error: could not install postgresql (apt-get install postgresql); the PostgreSQL store's tests need it" >&2
        exit 1
    fi
    bin="$(newest)"
fi
echo "$bin"
