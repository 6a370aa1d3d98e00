"""Fixtures: a PostgreSQL cluster, one Almanac daemon per store, SDK clients and task queues.

Each store's daemon lives for the whole session; tests isolate themselves by task queue and
workflow id. A test that kills the daemon must bring it back (server.restart()); if a daemon
dies anyway, the test during which it died fails and the next test gets a restarted one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import uuid
from collections.abc import Iterator

import pytest
from temporalio.client import Client

from harness import AlmanacServer, PostgresCluster

# ALMANAC_TEST_ADDRESS=host:port runs the suite against a server that is already running
# there (Almanac, or Temporal's dev server as the reference): no daemon and no PostgreSQL
# are started, every test runs once as [external], and tests that need to kill or restart
# the daemon are skipped.
EXTERNAL_ADDRESS = os.environ.get("ALMANAC_TEST_ADDRESS", "").strip()
STORES = ("external",) if EXTERNAL_ADDRESS else ("sqlite", "postgres")
DEFAULT_TEST_DEADLINE_S = 90.0
CONNECT_DEADLINE_S = 20.0


# Per-test wall-clock deadline ---------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"deadline(seconds): wall-clock limit of an async test "
        f"(default {DEFAULT_TEST_DEADLINE_S:g} s)",
    )


def _with_deadline(test_fn, seconds: float):
    @functools.wraps(test_fn)
    async def bounded(*args, **kwargs):
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                return await test_fn(*args, **kwargs)
        except TimeoutError:
            if limit.expired():
                pytest.fail(f"test did not finish within {seconds:g} s (hung?)")
            raise

    return bounded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Bounds every async test, so that a hang in the daemon fails the test instead of CI.

    With ALMANAC_TEST_ADDRESS, tests that start daemons of their own (they do not use the
    `server` fixture) are skipped."""
    for item in items:
        if EXTERNAL_ADDRESS and "server" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason="starts its own Almanac daemon"))
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            marker = item.get_closest_marker("deadline")
            seconds = marker.args[0] if marker else DEFAULT_TEST_DEADLINE_S
            item.obj = _with_deadline(item.obj, seconds)


# Daemon log on failure ----------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    server = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(server, AlmanacServer):
        state = (
            "running"
            if server.is_running()
            else f"NOT RUNNING (exit code {server.exit_code()})"
        )
        report.sections.append(
            (
                f"almanac {server.store} daemon: {state}; tail of {server.log_path}",
                server.log_tail(),
            )
        )
    return report


# Servers -------------------------------------------------------------------------------------


class ExternalServer:
    """A server the suite did not start (ALMANAC_TEST_ADDRESS): it can be used, not crashed."""

    store = "external"

    def __init__(self, address: str) -> None:
        self.address = address

    def kill9(self) -> None:
        pytest.skip("needs the Almanac daemon")

    def restart(self) -> None:
        pytest.skip("needs the Almanac daemon")

    def is_running(self) -> bool:
        return True


def _skip_if_external() -> None:
    if EXTERNAL_ADDRESS:
        pytest.skip("needs the Almanac daemon (ALMANAC_TEST_ADDRESS is set)")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    _skip_if_external()
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlmanacServer]:
    _skip_if_external()
    server = AlmanacServer("sqlite", tmp_path_factory.mktemp("almanac-sqlite"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster
) -> Iterator[AlmanacServer]:
    _skip_if_external()
    server = AlmanacServer(
        "postgres", tmp_path_factory.mktemp("almanac-postgres"), postgres=postgres_cluster
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=STORES, ids=STORES)
def server(request: pytest.FixtureRequest) -> Iterator[AlmanacServer | ExternalServer]:
    """The daemon for one store, running when the test starts (or the external server)."""
    if request.param == "external":
        yield ExternalServer(EXTERNAL_ADDRESS)
        return
    daemon: AlmanacServer = request.getfixturevalue(f"{request.param}_server")
    if not daemon.is_running():
        daemon.restart()
    yield daemon
    if not daemon.is_running():
        pytest.fail(
            f"almanac ({daemon.store}) exited with {daemon.exit_code()} during the test\n"
            f"{daemon.log_tail()}"
        )


# Clients -------------------------------------------------------------------------------------


@pytest.fixture
async def client(server: AlmanacServer | ExternalServer) -> Client:
    """An SDK client of the `default` namespace."""
    return await asyncio.wait_for(Client.connect(server.address), CONNECT_DEADLINE_S)


@pytest.fixture(params=[{}, {"max_cached_workflows": 0}], ids=["cached", "uncached"])
def worker_options(request: pytest.FixtureRequest) -> dict:
    """Worker options: with the workflow cache (sticky queues), and without (every task
    replays the whole history)."""
    return request.param


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
