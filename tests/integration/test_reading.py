"""Reading runs back: long-polled results, describe, paged history, handles by workflow id."""

from __future__ import annotations

import time

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy

from helpers import history_events, new_worker, pinned, type_names, unique_id
from workflows import EchoWorkflow, SequentialActivitiesWorkflow, SleepWorkflow


async def test_result_waits_for_close(client: Client, task_queue: str):
    async with new_worker(client, task_queue):
        handle = await client.start_workflow(
            SleepWorkflow.run, 2.0, id=unique_id(), task_queue=task_queue
        )
        started = time.monotonic()
        assert await handle.result() == 2.0
        waited = time.monotonic() - started
    # The run was open when result() was called; the answer came once the timer closed it.
    assert waited >= 1.5, f"result() returned after {waited:.3f} s, before the timer"
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_describe_running_then_completed(client: Client, task_queue: str):
    async with new_worker(client, task_queue):
        handle = await client.start_workflow(
            SleepWorkflow.run, 2.0, id=unique_id(), task_queue=task_queue
        )
        running = await handle.describe()
        assert running.status == WorkflowExecutionStatus.RUNNING
        assert running.id == handle.id
        assert running.run_id == handle.result_run_id
        assert running.workflow_type == "SleepWorkflow"
        assert running.task_queue == task_queue
        assert running.start_time is not None
        assert running.close_time is None
        await handle.result()

    closed = await handle.describe()
    assert closed.status == WorkflowExecutionStatus.COMPLETED
    assert closed.run_id == handle.result_run_id
    assert closed.workflow_type == "SleepWorkflow"
    assert closed.task_queue == task_queue
    assert closed.start_time == running.start_time
    assert closed.close_time is not None
    assert closed.close_time >= closed.start_time
    events = await history_events(handle)
    assert closed.history_length > 0
    assert closed.history_length == len(events)


async def test_paged_history_is_dense(client: Client, task_queue: str):
    activity_count = 150
    async with new_worker(client, task_queue):
        handle = await client.start_workflow(
            SequentialActivitiesWorkflow.run,
            activity_count,
            id=unique_id(),
            task_queue=task_queue,
        )
        assert await handle.result() == list(range(activity_count))

    by_id = client.get_workflow_handle(handle.id)
    small_pages = [event async for event in by_id.fetch_history_events(page_size=10)]
    default_pages = (await by_id.fetch_history()).events

    for events in (small_pages, default_pages):
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        assert events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
        completed = [
            e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        ]
        assert len(completed) == activity_count, type_names([e.event_type for e in events])
    assert small_pages == default_pages
    assert (await by_id.describe()).history_length == len(default_pages)


async def test_handle_by_id_follows_latest_run(client: Client, task_queue: str):
    workflow_id = unique_id()
    async with new_worker(client, task_queue):
        first = await client.start_workflow(
            EchoWorkflow.run, "first", id=workflow_id, task_queue=task_queue
        )
        assert await first.result() == "first"
        second = await client.start_workflow(
            EchoWorkflow.run,
            "second",
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        assert second.result_run_id != first.result_run_id

        latest = client.get_workflow_handle(workflow_id)
        assert await latest.result() == "second"

    description = await latest.describe()
    assert description.run_id == second.result_run_id
    assert description.status == WorkflowExecutionStatus.COMPLETED
    # The first run is still there, addressed by its run id.
    first_run = pinned(client, first)
    assert (await first_run.describe()).run_id == first.result_run_id
    assert await first_run.result() == "first"
