"""Runs a command with a private PostgreSQL server, for the unit tests' conformance suite.

Usage: with_postgres.py COMMAND [ARG...]

Starts a throwaway cluster (see integration/harness.py), creates a database, and runs the
command with ALMANAC_TEST_POSTGRES=host:port:user:database set. Exits with its exit code.
"""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))

from harness import PostgresCluster  # noqa: E402


def main() -> int:
    cluster = PostgresCluster()
    cluster.start()
    try:
        database = cluster.create_database()
        env = dict(os.environ)
        env["ALMANAC_TEST_POSTGRES"] = f"{cluster.host}:{cluster.port}:{cluster.ROLE}:{database}"
        return subprocess.call(sys.argv[1:], env=env)
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
