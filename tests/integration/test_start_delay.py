"""Start delay: the first workflow task waits for it; it shows as first_workflow_task_backoff
and in describe's execution time; plain signals during it are recorded and wait; a
signal-with-start ends it; cancel and terminate work during it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.worker import Worker

import lifecycle_workflows
from helpers import history_events, type_names, unique_id
from lifecycle_workflows import DelayedWorkflow

DELAY = timedelta(seconds=3)


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=lifecycle_workflows.WORKFLOWS)


async def test_delay_holds_the_first_task_and_signals_wait(client: Client, task_queue: str):
    async with worker(client, task_queue):
        began = time.monotonic()
        handle = await client.start_workflow(DelayedWorkflow.run, id=unique_id("delay"),
                                             task_queue=task_queue, start_delay=DELAY)
        desc = await handle.describe()
        assert desc.execution_time is not None and desc.start_time is not None
        assert abs((desc.execution_time - desc.start_time).total_seconds() - 3) < 0.01
        await handle.signal(DelayedWorkflow.note, "early")
        events = await history_events(handle)
        # Recorded at once, but no workflow task before the delay ends.
        assert type_names([e.event_type for e in events]) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"]
        started = events[0].workflow_execution_started_event_attributes
        assert started.first_workflow_task_backoff.ToTimedelta() == DELAY
        assert await handle.result() == ["early"]
        assert time.monotonic() - began >= DELAY.total_seconds() - 0.1


async def test_signal_with_start_ends_the_delay(client: Client, task_queue: str):
    workflow_id = unique_id("delay-sws")
    async with worker(client, task_queue):
        began = time.monotonic()
        await client.start_workflow(DelayedWorkflow.run, id=workflow_id, task_queue=task_queue,
                                    start_delay=timedelta(seconds=30))
        handle = await client.start_workflow(DelayedWorkflow.run, id=workflow_id,
                                             task_queue=task_queue, start_signal="note",
                                             start_signal_args=["now"])
        assert await handle.result() == ["now"]
        assert time.monotonic() - began < 15


@pytest.mark.parametrize("action", ["cancel", "terminate"])
async def test_cancel_and_terminate_during_the_delay(client: Client, task_queue: str,
                                                     action: str):
    async with worker(client, task_queue):
        handle = await client.start_workflow(DelayedWorkflow.run, id=unique_id("delay-end"),
                                             task_queue=task_queue,
                                             start_delay=timedelta(seconds=2))
        if action == "terminate":
            await handle.terminate("not needed")
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
        else:
            await handle.cancel()
            events = await history_events(handle)
            # A cancellation does not wait for the delay: a workflow task is scheduled with it.
            assert [e.event_type for e in events[1:3]] == [
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
                EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
