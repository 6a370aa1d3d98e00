"""Acknowledged means durable: kill -9 the daemon at awkward moments, restart it on the same
store, and every workflow completes exactly once with a well-formed history."""

from __future__ import annotations

import asyncio
import random

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from durable_workflows import (QuickActivityWorkflow, SlowActivityWorkflow, TimerWorkflow,
                               double, double_slowly)
from helpers import history_events, type_names, unique_id, wait_for_event


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue,
                  workflows=[TimerWorkflow, SlowActivityWorkflow, QuickActivityWorkflow],
                  activities=[double_slowly, double],
                  max_concurrent_activities=200, max_concurrent_workflow_tasks=200)


def check_history(events, expect: dict[EventType.ValueType, int]) -> None:
    """Dense ids, one start, one close (completed), workflow tasks in order, and exactly the
    expected count of each listed event type."""
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(ids) + 1)), f"event ids not dense: {ids}"
    types = [e.event_type for e in events]
    names = type_names(types)
    assert types[0] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, names
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, names
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1, names
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1, names
    for event_type, count in expect.items():
        assert types.count(event_type) == count, names
    by_id = {e.event_id: e for e in events}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            sched = by_id[e.workflow_task_started_event_attributes.scheduled_event_id]
            assert sched.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, names
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            started = by_id[e.workflow_task_completed_event_attributes.started_event_id]
            assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, names
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            started = by_id[e.activity_task_completed_event_attributes.started_event_id]
            assert started.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED, names


async def wait_for_each(handles: list[WorkflowHandle], event_type: EventType.ValueType) -> None:
    """Waits until every history holds `event_type`, one handle at a time: a hundred
    concurrent pollers would take the CPU that the worker in this same process needs to
    reach that event at all."""
    for h in handles:
        await wait_for_event(h, event_type, within_s=60)


async def start_all(client: Client, workflow_run, count: int, task_queue: str) -> list[WorkflowHandle]:
    return list(await asyncio.gather(*(
        client.start_workflow(workflow_run, i, id=unique_id("durable"), task_queue=task_queue)
        for i in range(count))))


@pytest.mark.deadline(180)
async def test_kill9_while_100_workflows_wait_on_timers(server, task_queue: str) -> None:
    client = await Client.connect(server.address)
    async with worker(client, task_queue):
        handles = await start_all(client, TimerWorkflow.run, 100, task_queue)
        await wait_for_each(handles, EventType.EVENT_TYPE_TIMER_STARTED)
        server.kill9()
        server.restart()
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == list(range(100))
    for h in handles:
        check_history(await history_events(h), {EventType.EVENT_TYPE_TIMER_FIRED: 1})


@pytest.mark.deadline(180)
async def test_kill9_while_100_workflows_are_mid_activity(server, task_queue: str) -> None:
    client = await Client.connect(server.address)
    async with worker(client, task_queue):
        handles = await start_all(client, SlowActivityWorkflow.run, 100, task_queue)
        await wait_for_each(handles, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        server.kill9()
        server.restart()
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [2 * i for i in range(100)]
    for h in handles:
        check_history(await history_events(h), {EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: 1})


@pytest.mark.deadline(300)
async def test_kill9_in_a_loop_during_a_500_workflow_load(server, task_queue: str) -> None:
    client = await Client.connect(server.address)
    rng = random.Random(7)
    total, concurrency = 500, 50
    ids = [unique_id("loop") for _ in range(total)]
    results: dict[str, int] = {}
    done = asyncio.Event()

    async def run_one(index: int, slots: asyncio.Semaphore) -> None:
        async with slots:
            workflow_id = ids[index]
            # A start that failed with the server down may or may not have been applied:
            # asking again is safe, because the id is the same.
            for _ in range(20):
                try:
                    handle = await client.start_workflow(QuickActivityWorkflow.run, index,
                                                         id=workflow_id, task_queue=task_queue)
                    break
                except WorkflowAlreadyStartedError:
                    handle = client.get_workflow_handle(workflow_id)
                    break
                except Exception:  # noqa: BLE001 - the server is down: try again
                    await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"could not start {workflow_id}")
            for _ in range(20):
                try:
                    results[workflow_id] = await handle.result()
                    return
                except Exception:  # noqa: BLE001
                    await asyncio.sleep(0.5)
            raise AssertionError(f"no result for {workflow_id}")

    async def crash_loop() -> int:
        kills = 0
        while not done.is_set():
            await asyncio.sleep(rng.uniform(0.7, 1.5))
            if done.is_set():
                break
            server.kill9()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
            kills += 1
        return kills

    started = asyncio.get_running_loop().time()
    async with worker(client, task_queue):
        slots = asyncio.Semaphore(concurrency)
        crasher = asyncio.create_task(crash_loop())
        try:
            await asyncio.gather(*(run_one(i, slots) for i in range(total)))
        finally:
            done.set()
            kills = await crasher
    elapsed = asyncio.get_running_loop().time() - started
    print(f"\ncrash loop ({server.store}): {total} workflows, {kills} kill -9s, {elapsed:.1f} s")
    assert kills >= 2, f"only {kills} crashes happened during the load"
    assert results == {ids[i]: 2 * i for i in range(total)}
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        events = await history_events(handle)
        # Exactly one run per id: the run that holds the result started the chain.
        desc = await handle.describe()
        assert desc.raw_description.workflow_execution_info.first_run_id == desc.run_id
        check_history(events, {EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: 1})
