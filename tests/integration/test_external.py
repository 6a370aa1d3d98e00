"""Signals and cancellation requests between workflows, and cancellation from a client.

A workflow's signal or cancellation request to another workflow leaves an "initiated" event
in the sender's history, then either a delivered event (and a WorkflowExecutionSignaled or
WorkflowExecutionCancelRequested event on the target, naming the sender) or a failed event
with a cause. The sequences and attributes are those Temporal's dev server writes.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import (
    CancelExternalWorkflowExecutionFailedCause,
    EventType,
    SignalExternalWorkflowExecutionFailedCause,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

import message_workflows
from helpers import decode, history_events, of_type, types_of, unique_id, wait_for_event
from message_workflows import (
    CancelExternalWorkflow,
    CleansUpOnCancelWorkflow,
    SignalExternalWorkflow,
    SignalWorkflow,
)

E = EventType
# Temporal names its history service as the identity of what one workflow sends another.
HISTORY_SERVICE_IDENTITY = "history-service"
NOT_FOUND_SIGNAL = (SignalExternalWorkflowExecutionFailedCause
                    .SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND)
NOT_FOUND_CANCEL = (CancelExternalWorkflowExecutionFailedCause
                    .CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND)
# What the SDK makes of those failures, from the cause alone.
SIGNAL_NOT_FOUND_SEEN = ["ApplicationError",
                         "Unable to signal external workflow because it was not found",
                         "ExternalWorkflowExecutionNotFound"]
CANCEL_NOT_FOUND_SEEN = ["ApplicationError",
                         "Unable to cancel external workflow because not found",
                         "ExternalWorkflowExecutionNotFound"]


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=message_workflows.WORKFLOWS,
                  activities=message_workflows.ACTIVITIES, **options)


async def idle_targets(client: Client, task_queue: str, workflow, arg: Any,
                       count: int, prefix: str) -> list[WorkflowHandle]:
    """`count` running workflows, each past its first workflow task (waiting)."""
    handles = [await client.start_workflow(workflow, arg, id=unique_id(prefix),
                                           task_queue=task_queue) for _ in range(count)]
    for h in handles:
        await wait_for_event(h, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    return handles


SENDER_TASK = ["EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
               "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]


# Signals -------------------------------------------------------------------------------------


async def test_signal_external_workflow(client: Client, task_queue: str, worker_options: dict):
    """One workflow signals a running one, then one that does not exist, then one that has
    completed."""
    async with worker(client, task_queue, **worker_options):
        [target] = await idle_targets(client, task_queue, SignalWorkflow.run, 1, 1, "target")
        closed = await client.start_workflow(SignalWorkflow.run, 0, id=unique_id("closed"),
                                             task_queue=task_queue)
        await closed.result()
        missing = unique_id("missing")
        sender = await client.start_workflow(
            SignalExternalWorkflow.run, args=[[target.id, missing, closed.id], "hello", False],
            id=unique_id("sender"), task_queue=task_queue)
        outcomes = await sender.result()
        assert outcomes == [["ok"], SIGNAL_NOT_FOUND_SEEN, SIGNAL_NOT_FOUND_SEEN]
        assert await target.result() == [["add", "hello"]]

    events = await history_events(sender)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *SENDER_TASK,
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED",
        *SENDER_TASK,
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
        *SENDER_TASK,
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
        *SENDER_TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = of_type(events, E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    for event, target_id in zip(initiated, [target.id, missing, closed.id]):
        attributes = event.signal_external_workflow_execution_initiated_event_attributes
        assert attributes.namespace == client.namespace
        assert attributes.workflow_execution.workflow_id == target_id
        assert attributes.signal_name == "add"
        assert decode(client, attributes.input) == ["hello"]
        assert attributes.workflow_task_completed_event_id == event.event_id - 1

    delivered = of_type(events, E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED)[0]
    delivered_attributes = delivered.external_workflow_execution_signaled_event_attributes
    assert delivered_attributes.initiated_event_id == initiated[0].event_id
    assert delivered_attributes.namespace == client.namespace
    assert delivered_attributes.workflow_execution.workflow_id == target.id

    failures = of_type(events, E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED)
    for event, initiated_event, target_id in zip(failures, initiated[1:], [missing, closed.id]):
        attributes = event.signal_external_workflow_execution_failed_event_attributes
        assert attributes.cause == NOT_FOUND_SIGNAL
        assert attributes.initiated_event_id == initiated_event.event_id
        assert attributes.namespace == client.namespace
        assert attributes.workflow_execution.workflow_id == target_id

    target_events = await history_events(target)
    assert types_of(target_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *SENDER_TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        *SENDER_TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    signaled = target_events[4].workflow_execution_signaled_event_attributes
    assert signaled.signal_name == "add"
    assert decode(client, signaled.input) == ["hello"]
    assert signaled.external_workflow_execution.workflow_id == sender.id
    assert signaled.external_workflow_execution.run_id == sender.result_run_id
    assert signaled.identity == HISTORY_SERVICE_IDENTITY
    # The completed target was left alone.
    assert of_type(await history_events(closed),
                   E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == []


@pytest.mark.deadline(120)
async def test_signal_twelve_workflows_at_once(client: Client, task_queue: str,
                                               worker_options: dict):
    """Twelve targets, so that they live on different history shards: each gets the signal
    once, naming the sender; the sender records twelve deliveries."""
    async with worker(client, task_queue, **worker_options):
        targets = await idle_targets(client, task_queue, SignalWorkflow.run, 1, 12, "target")
        sender = await client.start_workflow(
            SignalExternalWorkflow.run, args=[[t.id for t in targets], "fan-out", True],
            id=unique_id("sender"), task_queue=task_queue)
        assert await sender.result() == [["ok"]] * 12
        for t in targets:
            assert await t.result() == [["add", "fan-out"]]

    events = await history_events(sender)
    initiated = of_type(events, E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    delivered = of_type(events, E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED)
    assert len(initiated) == 12 and len(delivered) == 12, types_of(events)
    # All twelve were asked for in one workflow task.
    assert {e.signal_external_workflow_execution_initiated_event_attributes
            .workflow_task_completed_event_id for e in initiated} == {4}
    by_initiated = {e.external_workflow_execution_signaled_event_attributes.initiated_event_id:
                    e.external_workflow_execution_signaled_event_attributes
                    .workflow_execution.workflow_id for e in delivered}
    assert by_initiated == {
        e.event_id: e.signal_external_workflow_execution_initiated_event_attributes
        .workflow_execution.workflow_id for e in initiated}
    for t in targets:
        signaled = of_type(await history_events(t), E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        assert len(signaled) == 1
        origin = signaled[0].workflow_execution_signaled_event_attributes
        assert origin.external_workflow_execution.workflow_id == sender.id
        assert origin.external_workflow_execution.run_id == sender.result_run_id


# Cancellation --------------------------------------------------------------------------------


async def test_cancel_external_workflow(client: Client, task_queue: str, worker_options: dict):
    """One workflow asks for the cancellation of a running one (which catches it, cleans up
    with an activity and completes), then of one that does not exist."""
    async with worker(client, task_queue, **worker_options):
        [target] = await idle_targets(client, task_queue, CleansUpOnCancelWorkflow.run,
                                      "target", 1, "ctarget")
        missing = unique_id("missing")
        canceller = await client.start_workflow(
            CancelExternalWorkflow.run, args=[[target.id, missing], False],
            id=unique_id("canceller"), task_queue=task_queue)
        assert await canceller.result() == [["ok"], CANCEL_NOT_FOUND_SEEN]
        assert await target.result() == "cleaned up target"
    assert (await target.describe()).status == WorkflowExecutionStatus.COMPLETED

    events = await history_events(canceller)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *SENDER_TASK,
        "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        *SENDER_TASK,
        "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
        *SENDER_TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = of_type(events,
                        E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    for event, target_id in zip(initiated, [target.id, missing]):
        attributes = event.request_cancel_external_workflow_execution_initiated_event_attributes
        assert attributes.namespace == client.namespace
        assert attributes.workflow_execution.workflow_id == target_id
        assert attributes.workflow_task_completed_event_id == event.event_id - 1
    requested = of_type(events, E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED)[0]
    requested_attributes = requested.external_workflow_execution_cancel_requested_event_attributes
    assert requested_attributes.initiated_event_id == initiated[0].event_id
    assert requested_attributes.namespace == client.namespace
    assert requested_attributes.workflow_execution.workflow_id == target.id
    failed = of_type(events, E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED)[0]
    failed_attributes = failed.request_cancel_external_workflow_execution_failed_event_attributes
    assert failed_attributes.cause == NOT_FOUND_CANCEL
    assert failed_attributes.initiated_event_id == initiated[1].event_id
    assert failed_attributes.workflow_execution.workflow_id == missing

    target_events = await history_events(target)
    assert types_of(target_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *SENDER_TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        *SENDER_TASK,
        "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
        "EVENT_TYPE_ACTIVITY_TASK_STARTED",
        "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
        *SENDER_TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    cancel = target_events[4].workflow_execution_cancel_requested_event_attributes
    assert cancel.external_initiated_event_id == initiated[0].event_id
    assert cancel.external_workflow_execution.workflow_id == canceller.id
    assert cancel.external_workflow_execution.run_id == canceller.result_run_id
    # The target records the reason the sender gave.
    assert cancel.cause == (initiated[0]
                            .request_cancel_external_workflow_execution_initiated_event_attributes
                            .reason)
    assert cancel.identity == HISTORY_SERVICE_IDENTITY


@pytest.mark.deadline(120)
async def test_cancel_twelve_workflows_at_once(client: Client, task_queue: str):
    async with worker(client, task_queue):
        targets = await idle_targets(client, task_queue, CleansUpOnCancelWorkflow.run,
                                     "t", 12, "ctarget")
        canceller = await client.start_workflow(
            CancelExternalWorkflow.run, args=[[t.id for t in targets], True],
            id=unique_id("canceller"), task_queue=task_queue)
        assert await canceller.result() == [["ok"]] * 12
        for t in targets:
            assert await t.result() == "cleaned up t"
    events = await history_events(canceller)
    assert len(of_type(events, E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
               ) == 12
    assert len(of_type(events, E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED)) == 12
    for t in targets:
        requested = of_type(await history_events(t),
                            E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
        assert len(requested) == 1
        origin = requested[0].workflow_execution_cancel_requested_event_attributes
        assert origin.external_workflow_execution.workflow_id == canceller.id


async def test_client_cancel_lets_the_workflow_clean_up(client: Client, task_queue: str,
                                                        worker_options: dict):
    async with worker(client, task_queue, **worker_options):
        [target] = await idle_targets(client, task_queue, CleansUpOnCancelWorkflow.run,
                                      "by client", 1, "ctarget")
        await target.cancel()
        assert await target.result() == "cleaned up by client"
    assert (await target.describe()).status == WorkflowExecutionStatus.COMPLETED
    events = await history_events(target)
    requested = of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert len(requested) == 1, types_of(events)
    attributes = requested[0].workflow_execution_cancel_requested_event_attributes
    assert attributes.identity == client.identity
    assert not attributes.HasField("external_workflow_execution")
    assert attributes.external_initiated_event_id == 0
    assert len(of_type(events, E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)) == 1
