"""Acknowledged means durable: kill -9 the daemon mid-flight, restart it on the same store,
and every workflow completes exactly once with a well-formed history."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from temporalio.worker import Worker

from helpers import history_events, type_names, unique_id, wait_for_event

RUNS = 20


@activity.defn
async def slow_double(value: int) -> int:
    await asyncio.sleep(2)
    return value * 2


@workflow.defn
class TimerThenActivityWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        await asyncio.sleep(3)
        return await workflow.execute_activity(
            slow_double, value, start_to_close_timeout=timedelta(seconds=30)
        )


def check_history(events) -> None:
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(ids) + 1)), f"event ids not dense: {ids}"
    types = [e.event_type for e in events]
    assert types[0] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, type_names(types)
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    assert types.count(EventType.EVENT_TYPE_TIMER_FIRED) == 1, type_names(types)
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 1, type_names(types)


@pytest.mark.deadline(150)
async def test_kill9_while_waiting_on_timers_and_activities(server, task_queue: str) -> None:
    client = await Client.connect(server.address)
    async with Worker(client, task_queue=task_queue, workflows=[TimerThenActivityWorkflow],
                      activities=[slow_double]):
        handles = [
            await client.start_workflow(TimerThenActivityWorkflow.run, i,
                                        id=unique_id("durable"), task_queue=task_queue)
            for i in range(RUNS)
        ]
        # (a) every run is waiting on its timer: kill the server.
        for h in handles:
            await wait_for_event(h, EventType.EVENT_TYPE_TIMER_STARTED)
        server.kill9()
        server.restart()
        # (b) every run's activity is scheduled (most are running): kill again.
        for h in handles:
            await wait_for_event(h, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, within_s=60)
        server.kill9()
        server.restart()
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [2 * i for i in range(RUNS)]
    for h in handles:
        check_history(await history_events(h))
