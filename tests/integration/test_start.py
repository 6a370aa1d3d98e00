"""Starting runs: request-id de-duplication, id reuse and conflict policies, termination."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payloads, WorkflowType
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import TerminatedError, WorkflowAlreadyStartedError

from activities import CallRecorder
from helpers import (
    event_types,
    history_events,
    new_worker,
    pinned,
    type_names,
    unique_id,
    wait_for_event,
    wait_for_status,
)
from workflows import EchoWorkflow, FailingWorkflow, RemoteActivityWorkflow, SleepWorkflow

LONG_SLEEP_S = 3600.0


async def test_same_request_id_starts_once(client: Client, task_queue: str):
    request = StartWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_id=unique_id(),
        workflow_type=WorkflowType(name="EchoWorkflow"),
        task_queue=TaskQueue(name=task_queue),
        input=Payloads(payloads=await client.data_converter.encode(["once"])),
        identity="almanac-integration-tests",
        request_id=str(uuid.uuid4()),
    )
    first = await client.workflow_service.start_workflow_execution(request)
    second = await client.workflow_service.start_workflow_execution(request)
    assert first.run_id
    assert second.run_id == first.run_id

    handle = client.get_workflow_handle(request.workflow_id)
    types = await event_types(handle)
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1, type_names(types)
    await handle.terminate(reason="test cleanup")


async def test_start_of_running_id_is_rejected(client: Client, task_queue: str):
    workflow_id = unique_id()
    running = await client.start_workflow(
        SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
    )
    with pytest.raises(WorkflowAlreadyStartedError) as rejected:
        await client.start_workflow(
            SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
        )
    assert rejected.value.run_id == running.result_run_id
    await running.terminate(reason="test cleanup")


# Id reuse policies, after a closed run -----------------------------------------------------

OUTCOMES = ("completed", "failed", "terminated", "canceled", "timed_out")

CLOSED_STATUS = {
    "completed": WorkflowExecutionStatus.COMPLETED,
    "failed": WorkflowExecutionStatus.FAILED,
    "terminated": WorkflowExecutionStatus.TERMINATED,
    "canceled": WorkflowExecutionStatus.CANCELED,
    "timed_out": WorkflowExecutionStatus.TIMED_OUT,
}

# For each policy, the outcomes of the previous run after which a new start is allowed.
REUSE_ALLOWED_AFTER = {
    WorkflowIDReusePolicy.ALLOW_DUPLICATE: set(OUTCOMES),
    WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY: set(OUTCOMES) - {"completed"},
    WorkflowIDReusePolicy.REJECT_DUPLICATE: set(),
    WorkflowIDReusePolicy.TERMINATE_IF_RUNNING: set(OUTCOMES),
}


async def close_run(
    client: Client, task_queue: str, outcome: str
) -> WorkflowHandle[Any, Any]:
    """Starts a run and brings it to `outcome`; needs a worker on `task_queue`."""
    workflow_id = unique_id(outcome)
    handle: WorkflowHandle[Any, Any]
    if outcome == "completed":
        handle = await client.start_workflow(
            EchoWorkflow.run, "done", id=workflow_id, task_queue=task_queue
        )
        await handle.result()
    elif outcome == "failed":
        handle = await client.start_workflow(
            FailingWorkflow.run, "failed on purpose", id=workflow_id, task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    elif outcome == "terminated":
        handle = await client.start_workflow(
            SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
        )
        await handle.terminate(reason="closing for a reuse test")
    elif outcome == "canceled":
        handle = await client.start_workflow(
            SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
        )
        await wait_for_event(handle, EventType.EVENT_TYPE_TIMER_STARTED)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    elif outcome == "timed_out":
        handle = await client.start_workflow(
            SleepWorkflow.run,
            LONG_SLEEP_S,
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=1),
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    else:
        raise ValueError(outcome)
    await wait_for_status(pinned(client, handle), CLOSED_STATUS[outcome])
    return handle


@pytest.mark.parametrize(
    "policy", list(REUSE_ALLOWED_AFTER), ids=[p.name for p in REUSE_ALLOWED_AFTER]
)
async def test_reuse_policy_after_closed_run(
    client: Client, task_queue: str, policy: WorkflowIDReusePolicy
):
    async with new_worker(client, task_queue):
        closed = await asyncio.gather(
            *(close_run(client, task_queue, outcome) for outcome in OUTCOMES)
        )
        allowed_after = set()
        for outcome, previous in zip(OUTCOMES, closed):
            try:
                again = await client.start_workflow(
                    EchoWorkflow.run,
                    "again",
                    id=previous.id,
                    task_queue=task_queue,
                    id_reuse_policy=policy,
                )
            except WorkflowAlreadyStartedError:
                continue
            allowed_after.add(outcome)
            assert again.result_run_id != previous.result_run_id
            assert await again.result() == "again"

    assert allowed_after == REUSE_ALLOWED_AFTER[policy]


async def test_terminate_if_running_policy(client: Client, task_queue: str):
    workflow_id = unique_id()
    async with new_worker(client, task_queue):
        old = await client.start_workflow(
            SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
        )
        new = await client.start_workflow(
            EchoWorkflow.run,
            "replacement",
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
        )
        assert new.result_run_id != old.result_run_id
        assert await new.result() == "replacement"
    assert (await pinned(client, old).describe()).status == WorkflowExecutionStatus.TERMINATED


# Id conflict policies, against a running run ------------------------------------------------


async def test_conflict_policy_fail(client: Client, task_queue: str):
    workflow_id = unique_id()
    running = await client.start_workflow(
        SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
    )
    with pytest.raises(WorkflowAlreadyStartedError) as rejected:
        await client.start_workflow(
            SleepWorkflow.run,
            LONG_SLEEP_S,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    assert rejected.value.run_id == running.result_run_id
    assert (await running.describe()).status == WorkflowExecutionStatus.RUNNING
    await running.terminate(reason="test cleanup")


async def test_conflict_policy_use_existing(client: Client, task_queue: str):
    workflow_id = unique_id()
    running = await client.start_workflow(
        SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
    )
    existing = await client.start_workflow(
        SleepWorkflow.run,
        LONG_SLEEP_S,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    assert existing.result_run_id == running.result_run_id
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.run_id == running.result_run_id
    assert description.status == WorkflowExecutionStatus.RUNNING
    types = await event_types(pinned(client, running))
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1, type_names(types)
    await running.terminate(reason="test cleanup")


async def test_conflict_policy_terminate_existing(client: Client, task_queue: str):
    workflow_id = unique_id()
    old = await client.start_workflow(
        SleepWorkflow.run, LONG_SLEEP_S, id=workflow_id, task_queue=task_queue
    )
    new = await client.start_workflow(
        SleepWorkflow.run,
        LONG_SLEEP_S,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    assert new.result_run_id != old.result_run_id
    old_run = pinned(client, old)
    assert (await old_run.describe()).status == WorkflowExecutionStatus.TERMINATED
    old_types = await event_types(old_run)
    assert old_types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, type_names(
        old_types
    )
    latest = await client.get_workflow_handle(workflow_id).describe()
    assert latest.run_id == new.result_run_id
    assert latest.status == WorkflowExecutionStatus.RUNNING
    await new.terminate(reason="test cleanup")


# Terminate ---------------------------------------------------------------------------------


@pytest.mark.deadline(60)
async def test_terminate_blocked_on_timer(client: Client, task_queue: str):
    timer_s = 2.0
    async with new_worker(client, task_queue):
        handle = await client.start_workflow(
            SleepWorkflow.run, timer_s, id=unique_id(), task_queue=task_queue
        )
        await wait_for_event(handle, EventType.EVENT_TYPE_TIMER_STARTED)
        await handle.terminate(reason="stopped by the test")

        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, TerminatedError)

        events = await history_events(handle)
        last = events[-1]
        assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        assert last.workflow_execution_terminated_event_attributes.reason == "stopped by the test"
        assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED

        # Past the moment the timer would have fired, with the worker still polling: the
        # terminated run must not have moved.
        await asyncio.sleep(timer_s + 1.5)
        assert await history_events(handle) == events


@pytest.mark.deadline(60)
async def test_terminate_blocked_on_activity(client: Client, task_queue: str):
    activity_queue = f"{task_queue}-activities"
    recorder = CallRecorder()
    async with new_worker(client, task_queue):
        handle = await client.start_workflow(
            RemoteActivityWorkflow.run, activity_queue, id=unique_id(), task_queue=task_queue
        )
        await wait_for_event(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        await handle.terminate(reason="stopped by the test")
        events = await history_events(handle)
        assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED

        # Only now does anyone poll the activity's queue: the activity of a terminated run
        # must not be handed out.
        async with new_worker(client, activity_queue, activities=[recorder.record_call]):
            await asyncio.sleep(3)
        assert recorder.calls == []
        assert await history_events(handle) == events
