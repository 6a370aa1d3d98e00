"""The history core's shape, proven through the real daemon: waiters that a tiny run cache
never drops, shard ownership taken over by a second daemon on the same database, and a load
that survives 5% of the store's transactions failing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from core_workflows import ActivityTimerRetry, SleepThenReturn, add_one, fail_first_attempt
from harness import AlmanacServer, PostgresCluster
from helpers import history_events, type_names, unique_id
from test_durability import check_history

STORES = ("sqlite", "postgres")


def core_worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue,
                  workflows=[SleepThenReturn, ActivityTimerRetry],
                  activities=[add_one, fail_first_attempt],
                  max_concurrent_activities=200, max_concurrent_workflow_tasks=200)


def custom_server(request: pytest.FixtureRequest, tmp_path: Path, store: str,
                  **kwargs) -> AlmanacServer:
    postgres = request.getfixturevalue("postgres_cluster") if store == "postgres" else None
    daemon = AlmanacServer(store, tmp_path / store, postgres=postgres, **kwargs)
    request.addfinalizer(daemon.stop)
    daemon.start()
    return daemon


def check_dense_and_single_close(events) -> None:
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(ids) + 1)), f"event ids not dense: {ids}"
    closes = [e for e in events if e.event_type in (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT)]
    assert len(closes) == 1, type_names([e.event_type for e in events])


@pytest.mark.deadline(180)
@pytest.mark.parametrize("store", STORES)
async def test_result_waiters_survive_a_cache_of_16_runs(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """300 result() long polls wait at once on a daemon whose run cache holds 16 runs: each
    returns as soon as its workflow closes."""
    server = custom_server(request, tmp_path, store, extra_config="history:\n  cache_size: 16\n")
    client = await Client.connect(server.address)
    task_queue = unique_id("tq")
    count = 300
    async with core_worker(client, task_queue):
        # Staggered sleeps: the runs close one after another while every waiter is parked.
        handles = await asyncio.gather(*(
            client.start_workflow(SleepThenReturn.run, 4 + (i % 30) * 0.2,
                                  id=unique_id("waiter"), task_queue=task_queue)
            for i in range(count)))

        async def result_with_time(handle: WorkflowHandle) -> tuple[float, float]:
            value = await handle.result()
            return value, time.time()

        outcomes = await asyncio.gather(*(result_with_time(h) for h in handles))
        lags = []
        for handle, (value, returned_at) in zip(handles, outcomes):
            assert value == 4 + (handles.index(handle) % 30) * 0.2
            desc = await handle.describe()
            lags.append(returned_at - desc.close_time.timestamp())
    lags.sort()
    print(f"\nresult() lag after close ({store}): median {lags[len(lags) // 2]:.3f} s, "
          f"max {lags[-1]:.3f} s")
    # A dropped waiter would answer only at its poll deadline (tens of seconds) or never.
    assert lags[-1] < 3.0, f"a result() returned {lags[-1]:.1f} s after its workflow closed"
    assert server.is_running()


@pytest.mark.deadline(240)
async def test_a_second_daemon_takes_the_shards_and_the_first_stops_writing(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    database = cluster.create_database()
    first = custom_server(request, tmp_path, "postgres", database=database, name="first",
                          extra_config="log:\n  level: info\n")
    task_queue = unique_id("tq")
    client_a = await Client.connect(first.address)
    before: list[WorkflowHandle] = []
    async with core_worker(client_a, task_queue):
        for i in range(20):
            before.append(await client_a.start_workflow(
                ActivityTimerRetry.run, i, id=unique_id("owned-by-first"), task_queue=task_queue))
        # Some of them finish on the first daemon, some are mid-flight when it loses them.
        await asyncio.sleep(1.5)
        second = custom_server(request, tmp_path, "postgres", database=database, name="second",
                               extra_config="log:\n  level: info\n")
        # The first notices on its next write or lease renewal, and says so.
        deadline = time.monotonic() + 30
        while "ownership lost" not in first.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"the first daemon never noticed\n{first.log_tail()}"
            await asyncio.sleep(0.2)

    # It serves nothing stale: its runs answer Unavailable, not a cached state.
    with pytest.raises(RPCError) as err:
        await client_a.get_workflow_handle(before[0].id).describe(
            rpc_timeout=timedelta(seconds=5))
    assert err.value.status == RPCStatusCode.UNAVAILABLE, err.value
    assert first.is_running(), "losing a shard must not crash the daemon"

    client_b = await Client.connect(second.address)
    async with core_worker(client_b, task_queue):
        after = [await client_b.start_workflow(ActivityTimerRetry.run, 100 + i,
                                               id=unique_id("owned-by-second"),
                                               task_queue=task_queue)
                 for i in range(20)]
        handles = [client_b.get_workflow_handle(h.id) for h in before + after]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 150)
    expected = [(i + 1) + i * 10 for i in range(20)] + [(i + 1) + i * 10 for i in range(100, 120)]
    assert results == expected
    for handle in handles:
        events = await history_events(handle)
        check_dense_and_single_close(events)
        assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    log = first.log_path.read_text(errors="replace")
    assert "stops writing" in log


@pytest.mark.deadline(420)
@pytest.mark.parametrize("store", STORES)
async def test_500_workflows_complete_exactly_once_with_5_percent_store_faults(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = custom_server(
        request, tmp_path, store,
        persistence_config="  fault_injection: {rate: 0.05, seed: 11, timeout_delay_ms: 50}\n")
    pid = server._process.pid  # noqa: SLF001 - the daemon must never restart
    client = await Client.connect(server.address)
    task_queue = unique_id("tq")
    total = 500
    ids = [unique_id("faulty") for _ in range(total)]
    slots = asyncio.Semaphore(100)

    async def run_one(index: int) -> int:
        async with slots:
            handle = await client.start_workflow(ActivityTimerRetry.run, index, id=ids[index],
                                                 task_queue=task_queue)
            return await handle.result()

    started = time.monotonic()
    async with core_worker(client, task_queue):
        results = await asyncio.gather(*(run_one(i) for i in range(total)))
    elapsed = time.monotonic() - started
    log = server.log_path.read_text(errors="replace")
    print(f"\n{total} workflows under 5% store faults ({store}): {elapsed:.1f} s, "
          f"{log.count('injected fault')} logged fault reports")
    assert results == [(i + 1) + i * 10 for i in range(total)]
    assert server.is_running() and server._process.pid == pid  # noqa: SLF001
    assert "injected fault" in log, "no fault was injected: the test proves nothing"
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        events = await history_events(handle)
        check_history(events, {EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: 2,
                               EventType.EVENT_TYPE_TIMER_FIRED: 1})
        desc = await handle.describe()
        assert desc.raw_description.workflow_execution_info.first_run_id == desc.run_id
