#!/usr/bin/env bash
# Installs Azurite (npm), the Azure Blob Storage emulator the object-storage
# tests run against, and prints the path of its blob service. Safe to run
# repeatedly.
#
#   scripts/azurite.sh            # install if missing, print the path
#
# A local Azure Blob endpoint for trying Tidemark out (account
# devstoreaccount1 with Azurite's well-known key; create the container
# first, e.g. with Azure Storage Explorer or the az CLI):
#   "$(scripts/azurite.sh)" --blobHost 127.0.0.1 --blobPort 10000 \
#       --location /tmp/azurite --silent
#   # connection: --kind azure --config account=devstoreaccount1
#   #   --config container=lake
#   #   --config endpoint=http://127.0.0.1:10000/devstoreaccount1
set -euo pipefail
version=3.37.0
tools="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
dir="$tools/azurite-$version"
if [ ! -x "$dir/node_modules/.bin/azurite-blob" ]; then
    echo "azurite: installing azurite $version into $dir" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund "azurite@$version" >&2)
fi
echo "$dir/node_modules/.bin/azurite-blob"
