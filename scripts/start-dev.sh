#!/usr/bin/env bash
# Installs what is needed, builds, and starts Almanac in dev mode on the embedded SQLite
# store (127.0.0.1:7233, file almanac.db). Extra arguments go to `almanac start-dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh almanac
exec build/src/almanac start-dev "$@"
