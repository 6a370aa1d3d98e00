"""Fixtures: a PostgreSQL cluster, one Almanac daemon per store, SDK clients and task queues.

Each store's daemon lives for the whole session; tests isolate themselves by task queue and
workflow id. A test that kills the daemon must bring it back (server.restart()); if a daemon
dies anyway, the test during which it died fails and the next test gets a restarted one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
from collections.abc import Iterator

import pytest
from temporalio.client import Client

from harness import AlmanacServer, PostgresCluster

STORES = ("sqlite", "postgres")
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
    """Bounds every async test, so that a hang in the daemon fails the test instead of CI."""
    for item in items:
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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlmanacServer]:
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
    server = AlmanacServer(
        "postgres", tmp_path_factory.mktemp("almanac-postgres"), postgres=postgres_cluster
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=STORES, ids=STORES)
def server(request: pytest.FixtureRequest) -> Iterator[AlmanacServer]:
    """The daemon for one store, running when the test starts."""
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
async def client(server: AlmanacServer) -> Client:
    """An SDK client of the `default` namespace."""
    return await asyncio.wait_for(Client.connect(server.address), CONNECT_DEADLINE_S)


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
