#!/usr/bin/env bash
# Installs what Almanac needs to build, run and test, from Debian 12's packages.
# Only missing packages are installed, so a second run is quick.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libgtest-dev libpq-dev libsqlite3-dev libyaml-cpp-dev
  tzdata                    # the schedule spec engine reads time zones from /usr/share/zoneinfo
  npm                       # fetches the pinned Temporal API protos (scripts/fetch-temporal-api.sh)
  postgresql                # the integration tests start their own PostgreSQL server
  python3 python3-venv      # the integration tests run the official Python SDK
  chromium                  # the Web UI tests drive Temporal's UI headless (tests/integration/test_web_ui.py)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine may carry its own Node.js with npm instead of Debian's.
if command -v npm >/dev/null; then
  missing=("${missing[@]/npm}")
fi
to_install=()
for p in "${missing[@]}"; do [[ -n "$p" ]] && to_install+=("$p"); done

if (( ${#to_install[@]} > 0 )); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing: ${to_install[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${to_install[@]}"
fi
