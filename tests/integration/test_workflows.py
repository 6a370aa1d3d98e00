"""Workflows run to completion through the daemon, with and without a workflow cache.

Without a cache (max_cached_workflows=0) the worker keeps no state between workflow tasks: every
task carries the full history from event 1 and the SDK replays it, so these runs also check
that the history the daemon serves replays deterministically.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from helpers import event_types, new_worker, type_names, unique_id
from workflows import (
    ActivityFailureWorkflow,
    DeterministicValuesWorkflow,
    FailingWorkflow,
    GreetWorkflow,
    LocalActivityWorkflow,
    ParallelActivitiesWorkflow,
    PatchedWorkflow,
    SequentialActivitiesWorkflow,
    SleepWorkflow,
)


@pytest.fixture(
    params=[{}, {"max_cached_workflows": 0}], ids=["cached", "uncached"]
)
def worker_options(request: pytest.FixtureRequest) -> dict:
    return request.param


async def test_activity_result(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        result = await client.execute_workflow(
            GreetWorkflow.run, "Almanac", id=unique_id(), task_queue=task_queue
        )
    assert result == "Hello, Almanac!"


async def test_sequential_activities(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            SequentialActivitiesWorkflow.run, 20, id=unique_id(), task_queue=task_queue
        )
        result = await handle.result()
    assert result == list(range(20))
    types = await event_types(handle)
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 20


async def test_parallel_activities(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            ParallelActivitiesWorkflow.run, 50, id=unique_id(), task_queue=task_queue
        )
        result = await handle.result()
    assert result == [i * i for i in range(50)]
    types = await event_types(handle)
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 50
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 50


async def test_durable_timer(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        started = time.monotonic()
        handle = await client.start_workflow(
            SleepWorkflow.run, 1.0, id=unique_id(), task_queue=task_queue
        )
        result = await handle.result()
        elapsed = time.monotonic() - started
    assert result == 1.0
    assert elapsed >= 1.0, f"a 1 s timer fired after {elapsed:.3f} s"
    types = await event_types(handle)
    assert EventType.EVENT_TYPE_TIMER_STARTED in types, type_names(types)
    assert EventType.EVENT_TYPE_TIMER_FIRED in types, type_names(types)


async def test_local_activity(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            LocalActivityWorkflow.run, "local", id=unique_id(), task_queue=task_queue
        )
        result = await handle.result()
    assert result == "Hello, local!"
    types = await event_types(handle)
    # A local activity leaves a marker, not activity events.
    assert EventType.EVENT_TYPE_MARKER_RECORDED in types, type_names(types)
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types, type_names(types)


async def test_patched_branch_on_fresh_run(
    client: Client, task_queue: str, worker_options: dict
):
    async with new_worker(client, task_queue, **worker_options):
        result = await client.execute_workflow(
            PatchedWorkflow.run, id=unique_id(), task_queue=task_queue
        )
    assert result == "patched"


async def test_uuid_and_now(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        before, after, now = await client.execute_workflow(
            DeterministicValuesWorkflow.run, id=unique_id(), task_queue=task_queue
        )
    assert uuid.UUID(before).version == 4
    assert uuid.UUID(after).version == 4
    assert before != after
    workflow_now = datetime.fromisoformat(now)
    assert workflow_now.tzinfo is not None
    assert abs(workflow_now - datetime.now(timezone.utc)) < timedelta(minutes=1)


async def test_workflow_failure(client: Client, task_queue: str, worker_options: dict):
    async with new_worker(client, task_queue, **worker_options):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                FailingWorkflow.run, "out of coffee", id=unique_id(), task_queue=task_queue
            )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "out of coffee"
    assert cause.type == "WorkflowBroke"


async def test_non_retryable_activity_failure(
    client: Client, task_queue: str, worker_options: dict
):
    async with new_worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            ActivityFailureWorkflow.run, "A-17", id=unique_id(), task_queue=task_queue
        )
        seen = await handle.result()
    assert seen == {
        "message": "card declined for order A-17",
        "type": "CardDeclined",
        "non_retryable": "True",
        "retry_state": "NON_RETRYABLE_FAILURE",
    }
    # Non-retryable: one attempt, although the retry policy allows five.
    types = await event_types(handle)
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) == 1, type_names(types)
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) == 1, type_names(types)
