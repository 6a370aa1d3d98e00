"""Workflow updates: validated, accepted and completed through workflow tasks, recorded as
Temporal records them.

On a workflow that is waiting, an update travels in a speculative workflow task: if the
worker rejects it, nothing at all is written (not even the task's events); if it accepts,
the task's events are written, then WorkflowExecutionUpdateAccepted (and, when the handler
returns in the same task, WorkflowExecutionUpdateCompleted). Sequences and attributes are
those of Temporal's dev server.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    EventType,
    UpdateWorkflowExecutionLifecycleStage,
    WorkflowIdConflictPolicy,
)
from temporalio.api.errordetails.v1 import MultiOperationExecutionFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
from temporalio.api.workflowservice.v1 import (
    ExecuteMultiOperationRequest,
    StartWorkflowExecutionRequest,
    UpdateWorkflowExecutionRequest,
)
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import message_workflows
from helpers import (decode, history_events, of_type, run_cli, types_of, unique_id,
                     wait_for_event)
from message_workflows import UpdateWorkflow

RPC_TIMEOUT = timedelta(seconds=10)
E = EventType
TASK = ["EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=message_workflows.WORKFLOWS,
                  activities=message_workflows.ACTIVITIES, **options)


def update_id() -> str:
    return f"update-{uuid.uuid4()}"


async def waiting_workflow(client: Client, task_queue: str) -> WorkflowHandle:
    """An UpdateWorkflow past its first workflow task, waiting (needs a worker)."""
    handle = await client.start_workflow(UpdateWorkflow.run, id=unique_id("upd"),
                                         task_queue=task_queue)
    await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    return handle


async def finish(handle: WorkflowHandle) -> list[str]:
    await handle.signal(UpdateWorkflow.finish)
    return await handle.result()


def check_accepted(client: Client, event, update: str, name: str, args: list[Any],
                   sequencing_event_id: int) -> None:
    attributes = event.workflow_execution_update_accepted_event_attributes
    assert attributes.protocol_instance_id == update
    assert attributes.accepted_request_message_id == f"{update}/request"
    assert attributes.accepted_request_sequencing_event_id == sequencing_event_id
    assert attributes.accepted_request.meta.update_id == update
    assert attributes.accepted_request.meta.identity == client.identity
    assert attributes.accepted_request.input.name == name
    assert decode(client, attributes.accepted_request.input.args) == args


def check_completed(event, update: str, accepted_event_id: int):
    attributes = event.workflow_execution_update_completed_event_attributes
    assert attributes.meta.update_id == update
    assert attributes.accepted_event_id == accepted_event_id
    return attributes.outcome


# Accepted and completed ----------------------------------------------------------------------


async def test_update_accepted_and_completed(client: Client, task_queue: str,
                                             worker_options: dict):
    first, second = update_id(), update_id()
    async with worker(client, task_queue, **worker_options):
        handle = await waiting_workflow(client, task_queue)
        assert await handle.execute_update(UpdateWorkflow.append, "first", id=first) == ["first"]
        assert await handle.execute_update("custom-update", "named", id=second) == \
            "custom: named"
        assert await finish(handle) == ["first", "named"]

    events = await history_events(handle)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    # Each update was carried by the workflow task just before it (scheduled at 5 and 10).
    check_accepted(client, events[7], first, "append", ["first"], sequencing_event_id=5)
    outcome = check_completed(events[8], first, accepted_event_id=8)
    assert decode(client, outcome.success) == [["first"]]
    check_accepted(client, events[12], second, "custom-update", ["named"],
                   sequencing_event_id=10)
    outcome = check_completed(events[13], second, accepted_event_id=13)
    assert decode(client, outcome.success) == ["custom: named"]


async def test_validator_rejection_leaves_no_trace(client: Client, task_queue: str,
                                                   worker_options: dict):
    async with worker(client, task_queue, **worker_options):
        handle = await waiting_workflow(client, task_queue)
        before = await history_events(handle)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(UpdateWorkflow.append, "bad-value", id=update_id())
        cause = rejected.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "ValueError"
        assert cause.message == "rejected value 'bad-value'"

        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update("no_such_update", "x", id=update_id())
        cause = unknown.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.message.startswith(
            "Update handler for 'no_such_update' expected but not found")

        # Neither rejection wrote anything, not even the workflow tasks that carried them.
        assert await history_events(handle) == before
        accepted = update_id()
        assert await handle.execute_update(UpdateWorkflow.append, "good", id=accepted) == \
            ["good"]
        assert await finish(handle) == ["good"]

    events = await history_events(handle)
    assert events[: len(before)] == before
    assert types_of(events[len(before):len(before) + 5]) == [
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    ]
    accepted_events = of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    assert [e.workflow_execution_update_accepted_event_attributes.protocol_instance_id
            for e in accepted_events] == [accepted]


async def test_update_failing_after_acceptance(client: Client, task_queue: str):
    failing = update_id()
    async with worker(client, task_queue):
        handle = await waiting_workflow(client, task_queue)
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(UpdateWorkflow.fail_after_accepting, "boom", id=failing)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "UpdateBroke" and cause.message == "boom"
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert await finish(handle) == []

    events = await history_events(handle)
    assert types_of(events[4:9]) == [
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    ]
    check_accepted(client, events[7], failing, "fail_after_accepting", ["boom"],
                   sequencing_event_id=5)
    outcome = check_completed(events[8], failing, accepted_event_id=8)
    assert outcome.failure.message == "boom"
    assert outcome.failure.application_failure_info.type == "UpdateBroke"


async def test_accepted_update_completes_later_for_two_clients(
    server, client: Client, task_queue: str, worker_options: dict
):
    """start_update returns at acceptance; the update completes after a signal, and its
    result reaches both the handle and a second client that asks by update id."""
    waiting = update_id()
    async with worker(client, task_queue, **worker_options):
        handle = await waiting_workflow(client, task_queue)
        update = await handle.start_update(UpdateWorkflow.wait_for_release, "t1", id=waiting,
                                           wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        assert update.id == waiting
        assert update.workflow_run_id == handle.result_run_id
        events = await history_events(handle)
        assert types_of(events[4:]) == [*TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"]

        other = await Client.connect(server.address)
        from_other = asyncio.create_task(
            other.get_workflow_handle(handle.id).get_update_handle(waiting).result())
        await asyncio.sleep(0.5)
        assert not from_other.done()
        await handle.signal(UpdateWorkflow.release)
        assert await update.result() == "t1 released"
        assert await from_other == "t1 released"
        assert await finish(handle) == ["waiting t1", "released t1"]

    events = await history_events(handle)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    check_accepted(client, events[7], waiting, "wait_for_release", ["t1"],
                   sequencing_event_id=5)
    outcome = check_completed(events[12], waiting, accepted_event_id=8)
    assert decode(client, outcome.success) == ["t1 released"]


async def test_same_update_id_is_applied_once(client: Client, task_queue: str):
    once = update_id()
    async with worker(client, task_queue):
        handle = await waiting_workflow(client, task_queue)
        first = await handle.execute_update(UpdateWorkflow.append, "once", id=once)
        again = await handle.execute_update(UpdateWorkflow.append, "ignored", id=once)
        assert first == again == ["once"]
        assert await finish(handle) == ["once"]
        events = await history_events(handle)
        assert len(of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)) == 1
        assert len(of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)) == 1

        # After the workflow closed, the same id still finds its outcome...
        assert await handle.execute_update(UpdateWorkflow.append, "closed", id=once) == ["once"]
        assert await client.get_workflow_handle(handle.id).get_update_handle(once).result() == \
            ["once"]
        # ...and a new one is refused.
        with pytest.raises(RPCError) as closed:
            await handle.execute_update(UpdateWorkflow.append, "late", id=update_id())
        assert closed.value.status == RPCStatusCode.NOT_FOUND
        assert "workflow execution already completed" in closed.value.message
    assert await history_events(handle) == events


async def test_update_to_unknown_workflow_is_not_found(client: Client):
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(unique_id("absent")).execute_update(
            UpdateWorkflow.append, "x")
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_workflow_completing_before_its_accepted_update(client: Client, task_queue: str):
    abandoned = update_id()
    async with worker(client, task_queue):
        handle = await waiting_workflow(client, task_queue)
        update = await handle.start_update(UpdateWorkflow.wait_for_release, "never", id=abandoned,
                                           wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        await handle.signal(UpdateWorkflow.abandon)
        assert await handle.result() == ["waiting never"]
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await update.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "AcceptedUpdateCompletedWorkflow"
    assert cause.message == \
        "Workflow Update failed because the Workflow completed before the Update completed."
    assert cause.non_retryable
    events = await history_events(handle)
    assert of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) == []


# Update-with-start ---------------------------------------------------------------------------


def with_start(workflow_id: str, task_queue: str,
               policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.USE_EXISTING):
    return WithStartWorkflowOperation(UpdateWorkflow.run, id=workflow_id,
                                      task_queue=task_queue, id_conflict_policy=policy)


async def test_update_with_start_new_then_existing(client: Client, task_queue: str,
                                                   worker_options: dict):
    workflow_id = unique_id("uws")
    first, second = update_id(), update_id()
    async with worker(client, task_queue, **worker_options):
        start = with_start(workflow_id, task_queue)
        assert await client.execute_update_with_start_workflow(
            UpdateWorkflow.append, "started", start_workflow_operation=start, id=first) == \
            ["started"]
        started = await start.workflow_handle()
        assert started.result_run_id

        events = await history_events(started)
        assert types_of(events) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            *TASK,
            "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        ]
        # The update rode in the run's first workflow task.
        check_accepted(client, events[4], first, "append", ["started"], sequencing_event_id=2)

        again = with_start(workflow_id, task_queue)
        assert await client.execute_update_with_start_workflow(
            UpdateWorkflow.append, "existing", start_workflow_operation=again, id=second) == \
            ["started", "existing"]
        assert (await again.workflow_handle()).result_run_id == started.result_run_id
        assert await finish(client.get_workflow_handle(workflow_id)) == ["started", "existing"]
    events = await history_events(started)
    assert len(of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)) == 1
    assert len(of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)) == 2


async def test_start_update_with_start_until_accepted(client: Client, task_queue: str):
    workflow_id = unique_id("uws")
    async with worker(client, task_queue):
        start = with_start(workflow_id, task_queue)
        update = await client.start_update_with_start_workflow(
            UpdateWorkflow.wait_for_release, "uws", start_workflow_operation=start,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED, id=update_id())
        handle = await start.workflow_handle()
        assert update.workflow_run_id == handle.result_run_id
        await handle.signal(UpdateWorkflow.release)
        assert await update.result() == "uws released"
        assert await finish(handle) == ["waiting uws", "released uws"]


async def test_update_with_start_conflict_fail_on_running(client: Client, task_queue: str):
    workflow_id = unique_id("uws")
    running = await client.start_workflow(UpdateWorkflow.run, id=workflow_id,
                                          task_queue=task_queue)
    start = with_start(workflow_id, task_queue, WorkflowIDConflictPolicy.FAIL)
    with pytest.raises(WorkflowAlreadyStartedError):
        await client.execute_update_with_start_workflow(
            UpdateWorkflow.append, "refused", start_workflow_operation=start)
    with pytest.raises(WorkflowAlreadyStartedError):
        await start.workflow_handle()

    # On the wire: ALREADY_EXISTS, with one status per operation; the update is aborted.
    request = ExecuteMultiOperationRequest(namespace=client.namespace, operations=[
        ExecuteMultiOperationRequest.Operation(start_workflow=StartWorkflowExecutionRequest(
            namespace=client.namespace, workflow_id=workflow_id,
            workflow_type=WorkflowType(name="UpdateWorkflow"), task_queue=TaskQueue(name=task_queue),
            identity="almanac-integration-tests", request_id=str(uuid.uuid4()),
            workflow_id_conflict_policy=WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL)),
        ExecuteMultiOperationRequest.Operation(update_workflow=UpdateWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            wait_policy=WaitPolicy(lifecycle_stage=UpdateWorkflowExecutionLifecycleStage
                                   .UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED),
            request=Request(meta=Meta(update_id=update_id(), identity="almanac-integration-tests"),
                            input=Input(name="append")))),
    ])
    with pytest.raises(RPCError) as refused:
        await client.workflow_service.execute_multi_operation(request, timeout=RPC_TIMEOUT)
    assert refused.value.status == RPCStatusCode.ALREADY_EXISTS
    failures = [d for d in refused.value.grpc_status.details
                if d.type_url.endswith("MultiOperationExecutionFailure")]
    assert failures, [d.type_url for d in refused.value.grpc_status.details]
    failure = MultiOperationExecutionFailure()
    assert failures[0].Unpack(failure)
    assert [s.code for s in failure.statuses] == [RPCStatusCode.ALREADY_EXISTS,
                                                  RPCStatusCode.ABORTED]
    assert (await running.describe()).status == WorkflowExecutionStatus.RUNNING
    assert types_of(await history_events(running)) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    ]
    await running.terminate(reason="test cleanup")


# The temporal CLI ----------------------------------------------------------------------------


async def test_cli_update_execute(server, client: Client, task_queue: str):
    async with worker(client, task_queue):
        handle = await waiting_workflow(client, task_queue)
        code, out, err = await run_cli(server, "workflow", "update", "execute", "--workflow-id",
                                       handle.id, "--name", "append", "--input", '"from cli"',
                                       "--update-id", "cli-update", "-o", "json")
        assert code == 0, err
        assert json.loads(out) == {"name": "append", "updateId": "cli-update",
                                   "result": ["from cli"]}
        code, out, err = await run_cli(server, "workflow", "update", "execute", "--workflow-id",
                                       handle.id, "--name", "append", "--input", '"bad"')
        assert code != 0
        assert "rejected value 'bad'" in err
        assert await finish(handle) == ["from cli"]


# Bad input -----------------------------------------------------------------------------------


def raw_update(client: Client, execution: WorkflowExecution, name: str):
    return client.workflow_service.update_workflow_execution(
        UpdateWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=execution,
            wait_policy=WaitPolicy(lifecycle_stage=UpdateWorkflowExecutionLifecycleStage
                                   .UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED),
            request=Request(meta=Meta(update_id=update_id(), identity="almanac-integration-tests"),
                            input=Input(name=name))),
        timeout=RPC_TIMEOUT)


async def test_bad_update_requests(client: Client, task_queue: str):
    handle = await client.start_workflow(UpdateWorkflow.run, id=unique_id("bad"),
                                         task_queue=task_queue)
    with pytest.raises(RPCError) as empty:
        await raw_update(client, WorkflowExecution(workflow_id=handle.id), "")
    assert empty.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "Update name is not set" in empty.value.message
    with pytest.raises(RPCError) as unknown_run:
        await raw_update(client, WorkflowExecution(workflow_id=handle.id,
                                                   run_id=str(uuid.uuid4())), "append")
    assert unknown_run.value.status == RPCStatusCode.NOT_FOUND
    assert types_of(await history_events(handle)) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    ]
    await handle.terminate(reason="test cleanup")
