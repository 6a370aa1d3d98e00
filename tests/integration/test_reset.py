"""Reset: ResetWorkflowExecution and `temporal workflow reset`.

A reset names a base run and a reset point, the id of the event right after a workflow task
started (its WorkflowTaskCompleted, or the WorkflowTaskStarted itself). It starts a new run of
the same workflow id whose history is the base's events before that point, then
WorkflowTaskFailed with cause RESET_WORKFLOW (the reason as failure message, identity
"history-service", the base and new run ids), then what the reset carries over from after the
point: the base's signals, unchanged, and its updates, as WorkflowExecutionUpdateAdmitted with
origin REAPPLY (either left out on request), then a new workflow task. Activities pending at
the point are dispatched again. A base (or current run) still running is terminated, reason
the reset's and identity "history-resetter"; a closed base stays as it was. The new run
becomes the current run. Points that are not right after a workflow task started, or out of
the history, are refused with INVALID_ARGUMENT.

The request id does not make a repeated reset idempotent: the new run inherits the base's
create request id (its start's), and a reset is a duplicate, answered with the current run,
only when its request id equals the current run's create request id.

Two CLI views that belong with the same feature set are checked too: `temporal workflow show`
of a workflow id whose runs continued as new, and `temporal workflow describe` of a parent with
a running child.

The expected event sequences, attributes, codes and texts were read off Temporal's dev server
(temporal CLI 1.9.1, server 1.32.0) running the same workflows.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import time
import uuid
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    EventType,
    ResetReapplyExcludeType,
    ResetReapplyType,
    UpdateAdmittedEventOrigin,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure, ResetWorkflowFailureInfo
from temporalio.api.history.v1 import (
    HistoryEvent,
    WorkflowExecutionTerminatedEventAttributes,
    WorkflowExecutionUpdateAdmittedEventAttributes,
    WorkflowExecutionUpdateAcceptedEventAttributes,
    WorkflowTaskFailedEventAttributes,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    ResetWorkflowExecutionRequest,
    ResetWorkflowExecutionResponse,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import reset_workflows
from helpers import (
    POLL_INTERVAL_S,
    decode,
    history_events,
    of_type,
    run_cli,
    types_of,
    unique_id,
    wait_for_event,
)
from reset_workflows import (
    CollectorWorkflow,
    ContinueTwiceWorkflow,
    CountingActivityWorkflow,
    ParentOfWaitingChild,
    WaitingChild,
)

E = EventType
STARTED = "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
TASK = ["EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
TASK_FAILED = "EVENT_TYPE_WORKFLOW_TASK_FAILED"
SIGNALED = "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"
ACTIVITY = ["EVENT_TYPE_ACTIVITY_TASK_SCHEDULED", "EVENT_TYPE_ACTIVITY_TASK_STARTED",
            "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"]
COMPLETED = "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
TERMINATED = "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"
UPDATE_ADMITTED = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED"
UPDATE_ACCEPTED = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"
UPDATE_COMPLETED = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED"
# Who Temporal names as the author of what a reset writes: the new run's WorkflowTaskFailed
# (and a WorkflowTaskStarted it has to add), and the termination of the run it replaces.
HISTORY_SERVICE_IDENTITY = "history-service"
RESETTER_IDENTITY = "history-resetter"
# The request id of a WorkflowTaskStarted that the reset itself writes.
EMPTY_UUID = "emptyUuid"
# `temporal workflow reset` sends its --reason prefixed with the OS user's name.
CLI_USER = pwd.getpwuid(os.getuid()).pw_name
# A CountingActivityWorkflow whose activity has returned: the base of most tests here.
COMPLETED_ACTIVITY_RUN = [STARTED, *TASK, *ACTIVITY, *TASK, COMPLETED]


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=reset_workflows.WORKFLOWS,
                  activities=reset_workflows.ACTIVITIES, **options)


def reset(client: Client, workflow_id: str, run_id: str, event_id: int, reason: str,
          **fields: Any):
    """A ResetWorkflowExecution call (a fresh request id unless `fields` names one)."""
    fields.setdefault("request_id", str(uuid.uuid4()))
    return client.workflow_service.reset_workflow_execution(ResetWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        reason=reason, workflow_task_finish_event_id=event_id, **fields))


def reset_failure(reason: str, base_run_id: str, new_run_id: str, scheduled_id: int,
                  started_id: int) -> WorkflowTaskFailedEventAttributes:
    """The attributes of the WorkflowTaskFailed a reset writes in its new run."""
    return WorkflowTaskFailedEventAttributes(
        scheduled_event_id=scheduled_id, started_event_id=started_id,
        cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
        failure=Failure(message=reason, reset_workflow_failure_info=ResetWorkflowFailureInfo()),
        identity=HISTORY_SERVICE_IDENTITY, base_run_id=base_run_id, new_run_id=new_run_id)


async def wait_for_tasks(handle: WorkflowHandle, count: int,
                         within_s: float = 20) -> list[HistoryEvent]:
    """Polls the history until it holds `count` WorkflowTaskCompleted events; returns it."""
    deadline = time.monotonic() + within_s
    while True:
        events = await history_events(handle)
        if len(of_type(events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)) >= count:
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} completed workflow tasks after "
                                 f"{within_s:g} s: {types_of(events)}")
        await asyncio.sleep(POLL_INTERVAL_S)


async def collector_with_signals(client: Client, task_queue: str,
                                 values: list[str]) -> tuple[WorkflowHandle, list[HistoryEvent]]:
    """A CollectorWorkflow that has received an `add` signal for each of `values`, each in a
    workflow task of its own, and is waiting; returns a handle pinned to its run and its
    history."""
    handle = await client.start_workflow(CollectorWorkflow.run, id=unique_id("reset"),
                                         task_queue=task_queue)
    pinned = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    events = await wait_for_tasks(pinned, 1)
    for i, value in enumerate(values):
        await pinned.signal(CollectorWorkflow.add, value)
        events = await wait_for_tasks(pinned, i + 2)
    assert types_of(events) == [STARTED, *TASK, *[SIGNALED, *TASK] * len(values)]
    return pinned, events


async def assert_terminated_by_reset(handle: WorkflowHandle, before: list[HistoryEvent],
                                     reason: str) -> None:
    """The run that was running when the reset came ends Terminated by the resetter."""
    events = await history_events(handle)
    assert types_of(events) == [*types_of(before), TERMINATED]
    assert events[:-1] == before
    assert events[-1].workflow_execution_terminated_event_attributes == \
        WorkflowExecutionTerminatedEventAttributes(reason=reason, identity=RESETTER_IDENTITY)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED


async def expect_rpc_error(call, code: RPCStatusCode, message: str) -> None:
    with pytest.raises(RPCError) as caught:
        await call
    assert (caught.value.status, caught.value.message) == (code, message)


# Resetting a closed run ----------------------------------------------------------------------


async def test_reset_a_completed_workflow_to_its_first_workflow_task(
    client: Client, task_queue: str, worker_options: dict
):
    """The new run replays the base's first workflow task's start, fails that task and
    executes again: its activity runs a second time. The base stays completed."""
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(CountingActivityWorkflow.run, [],
                                             id=unique_id("reset"), task_queue=task_queue)
        assert await handle.result() == {"call": 1, "notes": []}
        base_run_id = handle.result_run_id
        base = client.get_workflow_handle(handle.id, run_id=base_run_id)
        base_events = await history_events(base)
        assert types_of(base_events) == COMPLETED_ACTIVITY_RUN
        point = of_type(base_events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)[0].event_id
        assert point == 4

        response = await reset(client, handle.id, base_run_id, point, "first task again")
        new_run_id = response.run_id
        assert new_run_id and new_run_id != base_run_id
        # The new run is the workflow id's current run.
        current = await client.get_workflow_handle(handle.id).describe()
        assert current.run_id == new_run_id
        new = client.get_workflow_handle(handle.id, run_id=new_run_id)
        assert await new.result() == {"call": 2, "notes": []}

    events = await history_events(new)
    assert types_of(events) == [
        STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        TASK_FAILED, *TASK, *ACTIVITY, *TASK, COMPLETED]
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    # The events before the reset point are the base's, as they are.
    assert events[:3] == base_events[:3]
    assert events[3].workflow_task_failed_event_attributes == reset_failure(
        "first task again", base_run_id, new_run_id, scheduled_id=2, started_id=3)
    failure = events[3].workflow_task_failed_event_attributes.failure
    assert failure.WhichOneof("failure_info") == "reset_workflow_failure_info"
    assert failure.source == ""
    assert decode(client, events[-1].workflow_execution_completed_event_attributes.result) \
        == [{"call": 2, "notes": []}]

    described = await new.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.raw_description.workflow_execution_info.first_run_id == base_run_id
    assert described.raw_description.workflow_extended_info.HasField("last_reset_time")
    # The base is left as it was.
    assert await history_events(base) == base_events
    assert (await base.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_reset_point_at_a_workflow_task_started(client: Client, task_queue: str):
    """A reset point that is a WorkflowTaskStarted keeps the task's scheduling only: the reset
    writes the task's start itself (identity history-service, request id "emptyUuid") before
    failing it."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CountingActivityWorkflow.run, [],
                                             id=unique_id("reset"), task_queue=task_queue)
        await handle.result()
        base = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        base_events = await history_events(base)
        assert types_of(base_events) == COMPLETED_ACTIVITY_RUN
        response = await reset(client, handle.id, handle.result_run_id, 3, "from the start")
        new = client.get_workflow_handle(handle.id, run_id=response.run_id)
        assert await new.result() == {"call": 2, "notes": []}

    events = await history_events(new)
    assert types_of(events) == [
        STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        TASK_FAILED, *TASK, *ACTIVITY, *TASK, COMPLETED]
    assert events[:2] == base_events[:2]
    started = events[2].workflow_task_started_event_attributes
    assert started.scheduled_event_id == 2
    assert started.identity == HISTORY_SERVICE_IDENTITY
    assert started.request_id == EMPTY_UUID
    assert not started.HasField("worker_version")
    assert events[3].workflow_task_failed_event_attributes == reset_failure(
        "from the start", handle.result_run_id, response.run_id, scheduled_id=2, started_id=3)


# Resetting a running workflow: signals and updates after the reset point -------------------


async def test_reset_a_running_workflow_reapplies_the_signals_after_the_point(
    client: Client, task_queue: str, worker_options: dict
):
    """Reset to the workflow task that saw signal "a": "a" is in the copied events, "b" comes
    after the point and is reapplied, unchanged, right after the WorkflowTaskFailed. The base,
    still running, is terminated."""
    async with worker(client, task_queue, **worker_options):
        base, base_events = await collector_with_signals(client, task_queue, ["a", "b"])
        point = of_type(base_events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)[1].event_id
        assert point == 8
        response = await reset(client, base.id, base.run_id, point, "signal b again")
        await assert_terminated_by_reset(base, base_events, "signal b again")
        assert (await client.get_workflow_handle(base.id).describe()).run_id == response.run_id

        new = client.get_workflow_handle(base.id, run_id=response.run_id)
        events = await wait_for_tasks(new, 2)
        assert types_of(events) == [
            STARTED, *TASK, SIGNALED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            "EVENT_TYPE_WORKFLOW_TASK_STARTED", TASK_FAILED, SIGNALED, *TASK]
        assert events[:7] == base_events[:7]
        assert events[7].workflow_task_failed_event_attributes == reset_failure(
            "signal b again", base.run_id, response.run_id, scheduled_id=6, started_id=7)
        reapplied = events[8].workflow_execution_signaled_event_attributes
        assert reapplied == base_events[8].workflow_execution_signaled_event_attributes
        assert reapplied.signal_name == "add"
        assert decode(client, reapplied.input) == ["b"]

        await new.signal(CollectorWorkflow.finish)
        assert await new.result() == ["signal:a", "signal:b"]
    assert types_of(await history_events(new))[len(events):] == [SIGNALED, *TASK, COMPLETED]


async def test_reset_to_the_last_workflow_task_reapplies_nothing(client: Client,
                                                                  task_queue: str):
    """Nothing came after the last workflow task: the new run is the whole base, that task
    failed, and a new one."""
    async with worker(client, task_queue):
        base, base_events = await collector_with_signals(client, task_queue, ["a"])
        point = base_events[-1].event_id
        assert point == 8
        response = await reset(client, base.id, base.run_id, point, "last task again")
        await assert_terminated_by_reset(base, base_events, "last task again")
        new = client.get_workflow_handle(base.id, run_id=response.run_id)
        events = await wait_for_tasks(new, 2)
        assert types_of(events) == [*types_of(base_events[:7]), TASK_FAILED, *TASK]
        assert events[:7] == base_events[:7]
        await new.signal(CollectorWorkflow.finish)
        assert await new.result() == ["signal:a"]


@pytest.mark.parametrize("fields", [
    {"reset_reapply_exclude_types": [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL]},
    {"reset_reapply_type": ResetReapplyType.RESET_REAPPLY_TYPE_NONE},
], ids=["exclude-signal", "reapply-none"])
async def test_reset_without_reapplying_signals(client: Client, task_queue: str,
                                                fields: dict):
    async with worker(client, task_queue):
        base, base_events = await collector_with_signals(client, task_queue, ["a", "b"])
        response = await reset(client, base.id, base.run_id, 4, "forget the signals", **fields)
        await assert_terminated_by_reset(base, base_events, "forget the signals")
        new = client.get_workflow_handle(base.id, run_id=response.run_id)
        events = await wait_for_tasks(new, 1)
        assert types_of(events) == [
            STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            TASK_FAILED, *TASK]
        await new.signal(CollectorWorkflow.finish)
        assert await new.result() == []


async def collector_with_an_update(client: Client,
                                   task_queue: str) -> tuple[WorkflowHandle, list[HistoryEvent]]:
    """A CollectorWorkflow that received signal "a", update "u1" and signal "b", in that
    order, after its first workflow task."""
    base, _ = await collector_with_signals(client, task_queue, ["a"])
    assert await base.execute_update(CollectorWorkflow.append, "u1", id="u1") == \
        ["signal:a", "update:u1"]
    await base.signal(CollectorWorkflow.add, "b")
    events = await wait_for_tasks(base, 4)
    assert types_of(events) == [STARTED, *TASK, SIGNALED, *TASK, *TASK, UPDATE_ACCEPTED,
                                UPDATE_COMPLETED, SIGNALED, *TASK]
    return base, events


async def test_reset_reapplies_updates_as_admitted(client: Client, task_queue: str,
                                                   worker_options: dict):
    """An update accepted after the reset point comes back, in its place among the signals, as
    WorkflowExecutionUpdateAdmitted (origin REAPPLY) carrying the accepted request; the worker
    accepts and completes it again in the new run, whose update outcome it then is."""
    async with worker(client, task_queue, **worker_options):
        base, base_events = await collector_with_an_update(client, task_queue)
        response = await reset(client, base.id, base.run_id, 4, "updates again")
        await assert_terminated_by_reset(base, base_events, "updates again")
        new = client.get_workflow_handle(base.id, run_id=response.run_id)
        events = await wait_for_event(new, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
        assert types_of(events) == [
            STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            TASK_FAILED, SIGNALED, UPDATE_ADMITTED, SIGNALED, *TASK, UPDATE_ACCEPTED,
            UPDATE_COMPLETED]
        assert events[4].workflow_execution_signaled_event_attributes == \
            base_events[4].workflow_execution_signaled_event_attributes
        accepted_before = of_type(base_events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)[0]
        assert events[5].workflow_execution_update_admitted_event_attributes == \
            WorkflowExecutionUpdateAdmittedEventAttributes(
                request=accepted_before.workflow_execution_update_accepted_event_attributes
                .accepted_request,
                origin=UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY)
        assert events[5].workflow_execution_update_admitted_event_attributes.request.meta \
            .update_id == "u1"
        assert events[6].workflow_execution_signaled_event_attributes == \
            base_events[-4].workflow_execution_signaled_event_attributes
        # The worker accepts the admitted request by its sequencing event; the request
        # itself is in the admitted event, not repeated.
        assert events[10].workflow_execution_update_accepted_event_attributes == \
            WorkflowExecutionUpdateAcceptedEventAttributes(
                protocol_instance_id="u1", accepted_request_message_id="u1/request",
                accepted_request_sequencing_event_id=6)
        completed = events[11].workflow_execution_update_completed_event_attributes
        assert completed.meta.update_id == "u1"
        assert completed.accepted_event_id == 11
        # The handler ran after signal "a" and before signal "b", as in the base.
        assert decode(client, completed.outcome.success) == [["signal:a", "update:u1"]]

        assert await new.get_update_handle("u1").result() == ["signal:a", "update:u1"]
        await new.signal(CollectorWorkflow.finish)
        # A worker without a cache replays the new run for its last task and, on replay, meets
        # the update at its UpdateAccepted, after both signals (the SDK's doing; the recorded
        # outcome stays as it was).
        assert await new.result() == (["signal:a", "update:u1", "signal:b"] if not worker_options
                                      else ["signal:a", "signal:b", "update:u1"])


@pytest.mark.parametrize("fields", [
    {"reset_reapply_exclude_types": [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE]},
    {"reset_reapply_type": ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL},
], ids=["exclude-update", "reapply-signal"])
async def test_reset_without_reapplying_updates(client: Client, task_queue: str,
                                                fields: dict):
    """Excluding updates (or asking for signals only) reapplies the signals alone; the new
    run knows nothing of the update."""
    async with worker(client, task_queue):
        base, base_events = await collector_with_an_update(client, task_queue)
        response = await reset(client, base.id, base.run_id, 4, "signals only", **fields)
        await assert_terminated_by_reset(base, base_events, "signals only")
        new = client.get_workflow_handle(base.id, run_id=response.run_id)
        events = await wait_for_tasks(new, 1)
        assert types_of(events) == [
            STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            TASK_FAILED, SIGNALED, SIGNALED, *TASK]
        await expect_rpc_error(new.get_update_handle("u1").result(),
                               RPCStatusCode.NOT_FOUND, 'update "u1" not found')
        await new.signal(CollectorWorkflow.finish)
        assert await new.result() == ["signal:a", "signal:b"]


# Activities pending at the reset point -------------------------------------------------------


async def test_activity_pending_at_the_reset_point_runs_again(client: Client, task_queue: str):
    """The activity was scheduled before the point and completed after it (its first call
    takes 3 s): the new run keeps its ActivityTaskScheduled and dispatches it again, and the
    second call's start and completion follow the new run's first workflow task."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CountingActivityWorkflow.run, [3.0, 0.5],
                                             id=unique_id("reset"), task_queue=task_queue)
        base = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        await wait_for_tasks(base, 1)
        await base.signal(CountingActivityWorkflow.note, "during")
        base_events = await wait_for_tasks(base, 2)
        assert types_of(base_events) == [STARTED, *TASK, "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
                                         SIGNALED, *TASK]
        point = base_events[-1].event_id
        response = await reset(client, handle.id, base.run_id, point, "activity again")
        await assert_terminated_by_reset(base, base_events, "activity again")
        new = client.get_workflow_handle(handle.id, run_id=response.run_id)
        assert await new.result() == {"call": 2, "notes": ["during"]}
    assert reset_workflows.calls[handle.id] == 2

    events = await history_events(new)
    assert types_of(events) == [
        STARTED, *TASK, "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED", SIGNALED,
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED", TASK_FAILED,
        *TASK, "EVENT_TYPE_ACTIVITY_TASK_STARTED", "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
        *TASK, COMPLETED]
    assert events[:8] == base_events[:8]
    assert events[8].workflow_task_failed_event_attributes == reset_failure(
        "activity again", base.run_id, response.run_id, scheduled_id=7, started_id=8)
    started = events[12].activity_task_started_event_attributes
    assert (started.scheduled_event_id, started.attempt) == (5, 1)
    activity_completed = events[13].activity_task_completed_event_attributes
    assert (activity_completed.scheduled_event_id, activity_completed.started_event_id) == (5, 13)
    assert decode(client, activity_completed.result) == [2]


# Bad requests --------------------------------------------------------------------------------


INVALID = RPCStatusCode.INVALID_ARGUMENT
OUT_OF_RANGE = "Workflow task finish ID must be > 1 && <= workflow last event ID."


def not_at_boundary(event_id: int) -> str:
    return (f"StateRebuilder unable to Rebuild mutable state to event ID: {event_id}, "
            f"version: 0, this event must be at the boundary")


async def test_reset_points_refused(client: Client, task_queue: str):
    """Points out of the history, and points not right after a workflow task started, on a
    completed CountingActivityWorkflow (11 events). Temporal rebuilds the base up to the event
    before the point, which must end a batch of events written together (event 1 shares its
    batch with the first WorkflowTaskScheduled, WorkflowTaskCompleted with the commands'
    events, the last WorkflowTaskCompleted with the completion), and must leave a workflow
    task started or scheduled. Nothing is reset."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CountingActivityWorkflow.run, [],
                                             id=unique_id("reset"), task_queue=task_queue)
        await handle.result()
    base = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    base_events = await history_events(base)
    assert types_of(base_events) == COMPLETED_ACTIVITY_RUN

    observed = {}
    for event_id in [0, 1, 2, 5, 6, 11, 12, 100, -1]:
        try:
            response = await reset(client, handle.id, base.run_id, event_id, "bad point")
            observed[event_id] = ("OK", response.run_id)
        except RPCError as error:
            observed[event_id] = (error.status.name, error.message)
    assert observed == {
        0: ("INVALID_ARGUMENT", OUT_OF_RANGE),
        1: ("INVALID_ARGUMENT", OUT_OF_RANGE),
        # the WorkflowTaskScheduled: event 1 is not the end of its batch
        2: ("INVALID_ARGUMENT", not_at_boundary(1)),
        # the ActivityTaskScheduled, written with the WorkflowTaskCompleted before it
        5: ("INVALID_ARGUMENT", not_at_boundary(4)),
        # the ActivityTaskStarted: no workflow task pending after the ActivityTaskScheduled
        6: ("INVALID_ARGUMENT", "Can only reset workflow to event ID in range "
                                "[WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: 6"),
        # the WorkflowExecutionCompleted, written with the WorkflowTaskCompleted before it
        11: ("INVALID_ARGUMENT", not_at_boundary(10)),
        12: ("INVALID_ARGUMENT", OUT_OF_RANGE),
        100: ("INVALID_ARGUMENT", OUT_OF_RANGE),
        -1: ("INVALID_ARGUMENT", OUT_OF_RANGE),
    }
    assert (await client.get_workflow_handle(handle.id).describe()).run_id == base.run_id
    assert await history_events(base) == base_events


async def test_reset_of_unknown_or_malformed_executions(client: Client, task_queue: str):
    async with worker(client, task_queue):
        handle = await client.start_workflow(CountingActivityWorkflow.run, [],
                                             id=unique_id("reset"), task_queue=task_queue)
        await handle.result()
    absent = unique_id("absent")
    await expect_rpc_error(reset(client, absent, "", 4, "nobody"), RPCStatusCode.NOT_FOUND,
                           f"workflow not found for ID: {absent}")
    run_id = str(uuid.uuid4())
    await expect_rpc_error(
        reset(client, handle.id, run_id, 4, "no such run"), RPCStatusCode.NOT_FOUND,
        f'workflow execution not found for workflow ID "{handle.id}" and run ID "{run_id}"')
    await expect_rpc_error(reset(client, "", "", 4, "no id"), INVALID,
                           "WorkflowId is not set on request.")
    await expect_rpc_error(reset(client, handle.id, "not-a-uuid", 4, "bad run id"), INVALID,
                           "Invalid RunId.")
    assert (await client.get_workflow_handle(handle.id).describe()).run_id == \
        handle.result_run_id


# Request ids ---------------------------------------------------------------------------------


async def test_repeating_a_reset_request_resets_again(client: Client, task_queue: str):
    """The same request (same request id) sent twice resets twice: a second new run, which
    terminates the first one, now the current run. Temporal compares the request id with the
    current run's create request id only, and the first reset's run has its base's (the
    start's), not the reset's."""
    async with worker(client, task_queue):
        base, base_events = await collector_with_signals(client, task_queue, [])
        request_id = str(uuid.uuid4())
        first = await reset(client, base.id, base.run_id, 4, "once", request_id=request_id)
        first_run = client.get_workflow_handle(base.id, run_id=first.run_id)
        first_events = await wait_for_tasks(first_run, 1)
        second = await reset(client, base.id, base.run_id, 4, "twice", request_id=request_id)
        assert second.run_id not in (first.run_id, base.run_id)
        await assert_terminated_by_reset(base, base_events, "once")
        await assert_terminated_by_reset(first_run, first_events, "twice")
        current = client.get_workflow_handle(base.id)
        assert (await current.describe()).run_id == second.run_id
        await current.signal(CollectorWorkflow.finish)
        assert await current.result() == []


async def test_reset_with_the_current_runs_start_request_id_is_a_duplicate(
    client: Client, task_queue: str
):
    """A reset whose request id is the current run's create request id changes nothing and
    answers with the current run; a run made by a reset inherits its base's create request
    id."""
    start_request_id = str(uuid.uuid4())
    workflow_id = unique_id("reset")
    async with worker(client, task_queue):
        started = await client.workflow_service.start_workflow_execution(
            StartWorkflowExecutionRequest(
                namespace=client.namespace, workflow_id=workflow_id,
                workflow_type=WorkflowType(name="CollectorWorkflow"),
                task_queue=TaskQueue(name=task_queue), request_id=start_request_id))
        base = client.get_workflow_handle(workflow_id, run_id=started.run_id)
        base_events = await wait_for_tasks(base, 1)
        duplicate = await reset(client, workflow_id, started.run_id, 4, "duplicate",
                                request_id=start_request_id)
        assert duplicate == ResetWorkflowExecutionResponse(run_id=started.run_id)
        assert await history_events(base) == base_events
        assert (await base.describe()).status == WorkflowExecutionStatus.RUNNING

        reset_run = await reset(client, workflow_id, started.run_id, 4, "a real one")
        assert reset_run.run_id != started.run_id
        # The base is not current any more; the reset run is, with the start's request id.
        again = await reset(client, workflow_id, started.run_id, 4, "duplicate again",
                            request_id=start_request_id)
        assert again.run_id == reset_run.run_id
        current = client.get_workflow_handle(workflow_id)
        assert (await current.describe()).run_id == reset_run.run_id
        await current.signal(CollectorWorkflow.finish)
        assert await current.result() == []
    assert TERMINATED not in types_of(await history_events(current))


# The temporal CLI ----------------------------------------------------------------------------


async def test_cli_reset(server, client: Client, task_queue: str):
    """`temporal workflow reset` by type (FirstWorkflowTask: the CLI finds event 4 in the
    history) and by event id on a given run; each new run re-executes and completes."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CountingActivityWorkflow.run, [],
                                             id=unique_id("reset"), task_queue=task_queue)
        assert await handle.result() == {"call": 1, "notes": []}
        base_run_id = handle.result_run_id

        code, out, err = await run_cli(server, "workflow", "reset", "--workflow-id", handle.id,
                                       "--type", "FirstWorkflowTask", "--reason", "cli first",
                                       "-y")
        assert (code, err) == (0, "")
        assert out == f"Resetting workflow {handle.id} to event ID 4\n"
        latest = client.get_workflow_handle(handle.id)
        first_run_id = (await latest.describe()).run_id
        assert first_run_id != base_run_id
        assert await latest.result() == {"call": 2, "notes": []}
        failed = of_type(await history_events(latest), E.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        assert [e.workflow_task_failed_event_attributes for e in failed] == [
            reset_failure(f"{CLI_USER}: cli first", base_run_id, first_run_id, scheduled_id=2,
                          started_id=3)]

        code, out, err = await run_cli(server, "workflow", "reset", "--workflow-id", handle.id,
                                       "--run-id", base_run_id, "--event-id", "4",
                                       "--reason", "cli event id", "-y", "-o", "json")
        assert (code, err) == (0, "")
        second_run_id = json.loads(out)["runId"]
        assert second_run_id not in (base_run_id, first_run_id)
        assert (await latest.describe()).run_id == second_run_id
        assert await latest.result() == {"call": 3, "notes": []}
        assert types_of(await history_events(latest))[:4] == [
            STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            TASK_FAILED]


async def test_cli_reset_excluding_signals(server, client: Client, task_queue: str):
    async with worker(client, task_queue):
        base, base_events = await collector_with_signals(client, task_queue, ["a"])
        code, out, err = await run_cli(server, "workflow", "reset", "--workflow-id", base.id,
                                       "--event-id", "4", "--reason", "cli without signals",
                                       "--reapply-exclude", "Signal", "-y")
        assert (code, err) == (0, "")
        assert out == f"Resetting workflow {base.id} to event ID 4\n"
        await assert_terminated_by_reset(base, base_events, f"{CLI_USER}: cli without signals")
        latest = client.get_workflow_handle(base.id)
        await latest.signal(CollectorWorkflow.finish)
        assert await latest.result() == []


async def test_cli_show_without_run_id_shows_the_last_run_of_a_chain(
    server, client: Client, task_queue: str
):
    async with worker(client, task_queue):
        handle = await client.start_workflow(ContinueTwiceWorkflow.run, [],
                                             id=unique_id("reset-can"), task_queue=task_queue)
        runs = await handle.result()
    assert len(set(runs)) == 3
    code, out, err = await run_cli(server, "workflow", "show", "--workflow-id", handle.id,
                                   "-o", "json")
    assert code == 0, err
    events = json.loads(out)["events"]
    assert [(e["eventType"], e.get("workflowExecutionStartedEventAttributes", {})
             .get("continuedExecutionRunId")) for e in events] == [
        (STARTED, runs[1]), (TASK[0], None), (TASK[1], None), (TASK[2], None),
        (COMPLETED, None)]


async def test_cli_describe_lists_the_running_child(server, client: Client, task_queue: str):
    parent_id = unique_id("reset-parent")
    child_id = f"{parent_id}-child"
    async with worker(client, task_queue):
        parent = await client.start_workflow(ParentOfWaitingChild.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        events = await wait_for_event(parent, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        child_run_id = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)[0] \
            .child_workflow_execution_started_event_attributes.workflow_execution.run_id
        code, out, err = await run_cli(server, "workflow", "describe", "--workflow-id",
                                       parent_id, "-o", "json")
        assert code == 0, err
        assert json.loads(out)["pendingChildren"] == [{
            "workflowId": child_id, "runId": child_run_id, "workflowTypeName": "WaitingChild",
            "initiatedId": "5", "parentClosePolicy": "PARENT_CLOSE_POLICY_TERMINATE"}]
        await client.get_workflow_handle(child_id).signal(WaitingChild.finish)
        assert await parent.result() == "from the child"


async def test_reset_keeps_a_running_child(client: Client, task_queue: str):
    """A parent reset past its child's start keeps the child: the child's completion, which
    it reports to the run that started it, reaches the reset run, and the parent returns the
    child's result. The replaced run's close policy is not applied."""
    parent_id = unique_id("reset-parent")
    child_id = f"{parent_id}-child"
    async with worker(client, task_queue):
        parent = await client.start_workflow(ParentOfWaitingChild.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        events = await wait_for_tasks(parent, 2)
        point = of_type(events, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)[1].event_id
        resp = await reset(client, parent_id, parent.first_execution_run_id, point, "keep child")
        child = client.get_workflow_handle(child_id)
        assert (await child.describe()).status == WorkflowExecutionStatus.RUNNING
        await child.signal(WaitingChild.finish)
        new_run = client.get_workflow_handle(parent_id, run_id=resp.run_id)
        assert await new_run.result() == "from the child"
    events = await history_events(new_run)
    completed = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
    assert len(completed) == 1
    started = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)[0]
    assert completed[0].child_workflow_execution_completed_event_attributes.started_event_id == \
        started.event_id
    assert started.event_id < point
