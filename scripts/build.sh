#!/usr/bin/env bash
# Configures and builds Almanac into build/ (Ninja, ccache). Extra arguments name targets.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
fi
# Two cores: more jobs only thrash; generated protos are memory-hungry.
cmake --build build -j "${JOBS:-2}" ${1:+--target "$@"}
