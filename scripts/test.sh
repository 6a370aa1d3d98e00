#!/usr/bin/env bash
# Runs every test: the GoogleTest unit tests (ctest; the store conformance suite runs on
# SQLite and on a PostgreSQL server started for it), then the integration tests, which drive
# the real daemon with the official Python SDK against SQLite and a PostgreSQL server that
# they start themselves. Installs and builds whatever is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
bash scripts/build-web-ui.sh   # Temporal's Web UI server, for tests/integration/test_web_ui.py

venv="${ALMANAC_VENV:-build/venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if ! cmp -s tests/requirements.txt "$venv/.requirements" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$venv/.requirements"
fi

echo "== unit tests"
"$venv/bin/python" tests/with_postgres.py ctest --test-dir build --output-on-failure -j 2

echo "== integration tests"
"$venv/bin/python" -m pytest tests/integration -q "$@"
