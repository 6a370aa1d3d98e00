"""Queries: answered by the worker from the workflow's state, never recorded in the history.

Behaviour checked against Temporal's dev server: a query waits for a workflow task in
flight and is answered after it; a closed workflow is replayed to answer; an unknown query
type fails the query only; reject conditions refuse by the run's status.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, QueryResultType
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.workflowservice.v1 import (
    QueryWorkflowRequest,
    RespondQueryTaskCompletedRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import message_workflows
from helpers import history_events, run_cli, types_of, unique_id, wait_for_event
from message_workflows import BusyFirstTaskWorkflow, QueryWorkflow, SignalWorkflow

RPC_TIMEOUT = timedelta(seconds=10)
E = EventType


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=message_workflows.WORKFLOWS,
                  activities=message_workflows.ACTIVITIES, **options)


async def waiting_query_workflow(client: Client, task_queue: str):
    """A QueryWorkflow past its first workflow task, waiting for `finish`."""
    handle = await client.start_workflow(QueryWorkflow.run, "wait", id=unique_id("query"),
                                         task_queue=task_queue)
    await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    return handle


async def test_queries_by_method_name_arguments_and_dynamic(
    client: Client, task_queue: str, worker_options: dict
):
    async with worker(client, task_queue, **worker_options):
        handle = await waiting_query_workflow(client, task_queue)
        before = await history_events(handle)
        assert await handle.query(QueryWorkflow.get_state) == "running (wait)"
        assert await handle.query("custom-query") == "custom: running (wait)"
        assert await handle.query(QueryWorkflow.add, args=[2, 40]) == 42
        assert await handle.query("not-declared", "x") == \
            "dynamic not-declared(x) in running (wait)"
        # Queries leave no trace in the history.
        assert await history_events(handle) == before
        await handle.signal(QueryWorkflow.finish)
        assert await handle.result() == "done (wait)"


async def test_query_waits_for_the_workflow_task_in_flight(
    client: Client, task_queue: str, worker_options: dict
):
    """The first workflow task holds a 2 s local activity; a query sent meanwhile is
    answered once that task has completed, from the state it left."""
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(BusyFirstTaskWorkflow.run, 2.0,
                                             id=unique_id("busy"), task_queue=task_queue)
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        sent = time.monotonic()
        stage = await handle.query(BusyFirstTaskWorkflow.current_stage)
        waited = time.monotonic() - sent
        assert stage == "paused 2 s"
        assert waited >= 1.0, f"answered after {waited:.2f} s, inside the task"
        assert types_of(await history_events(handle)) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            "EVENT_TYPE_WORKFLOW_TASK_STARTED",
            "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
            "EVENT_TYPE_MARKER_RECORDED",
        ]
        await handle.signal(BusyFirstTaskWorkflow.add, "done")
        assert await handle.result() == ["paused 2 s", "done"]


async def test_query_a_completed_workflow(client: Client, task_queue: str,
                                          worker_options: dict):
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(QueryWorkflow.run, "complete",
                                             id=unique_id("query"), task_queue=task_queue)
        assert await handle.result() == "done (complete)"
        before = await history_events(handle)
        # The worker replays the closed run's history to answer.
        assert await handle.query(QueryWorkflow.get_state) == "done (complete)"
        assert await handle.query(QueryWorkflow.add, args=[1, 1]) == 2
    assert await history_events(handle) == before


async def test_unknown_query_type_fails_the_query_only(client: Client, task_queue: str):
    async with worker(client, task_queue):
        handle = await client.start_workflow(SignalWorkflow.run, 1, id=unique_id("query"),
                                             task_queue=task_queue)
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        with pytest.raises(WorkflowQueryFailedError) as failed:
            await handle.query("no_such_query")
        # The worker's message, passed through unchanged.
        assert failed.value.message.startswith(
            "Query handler for 'no_such_query' expected but not found")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert await handle.query(SignalWorkflow.seen) == []
        await handle.signal(SignalWorkflow.add, "still alive")
        assert await handle.result() == [["add", "still alive"]]
    types = types_of(await history_events(handle))
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in types, types


async def test_query_reject_conditions(client: Client, task_queue: str):
    not_open = QueryRejectCondition.NOT_OPEN
    not_clean = QueryRejectCondition.NOT_COMPLETED_CLEANLY
    async with worker(client, task_queue):
        running = await waiting_query_workflow(client, task_queue)
        assert await running.query(QueryWorkflow.get_state, reject_condition=not_open) == \
            "running (wait)"
        assert await running.query(QueryWorkflow.get_state, reject_condition=not_clean) == \
            "running (wait)"

        completed = await client.start_workflow(QueryWorkflow.run, "complete",
                                                id=unique_id("query"), task_queue=task_queue)
        await completed.result()
        with pytest.raises(WorkflowQueryRejectedError) as rejected:
            await completed.query(QueryWorkflow.get_state, reject_condition=not_open)
        assert rejected.value.status == WorkflowExecutionStatus.COMPLETED
        assert await completed.query(QueryWorkflow.get_state, reject_condition=not_clean) == \
            "done (complete)"

        failed = await client.start_workflow(QueryWorkflow.run, "fail", id=unique_id("query"),
                                             task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await failed.result()
        for condition in (not_open, not_clean):
            with pytest.raises(WorkflowQueryRejectedError) as rejected:
                await failed.query(QueryWorkflow.get_state, reject_condition=condition)
            assert rejected.value.status == WorkflowExecutionStatus.FAILED
        # Without a condition, the failed run still answers (replayed).
        assert await failed.query(QueryWorkflow.get_state) == "running (fail)"

        await running.signal(QueryWorkflow.finish)
        await running.result()


# The temporal CLI ----------------------------------------------------------------------------


async def test_cli_query_and_stack(server, client: Client, task_queue: str):
    async with worker(client, task_queue):
        handle = await waiting_query_workflow(client, task_queue)
        code, out, err = await run_cli(server, "workflow", "query", "--workflow-id", handle.id,
                                       "--name", "add", "--input", "2", "--input", "40")
        assert code == 0, err
        assert "42" in out
        code, out, err = await run_cli(server, "workflow", "query", "--workflow-id", handle.id,
                                       "--type", "get_state", "-o", "json")
        assert code == 0, err
        assert json.loads(out) == {"queryResult": ["running (wait)"]}
        code, out, err = await run_cli(server, "workflow", "query", "--workflow-id", handle.id,
                                       "--name", "not-declared", "--input", '"cli"')
        assert code == 0, err
        assert "dynamic not-declared(cli) in running (wait)" in out
        code, out, err = await run_cli(server, "workflow", "stack", "--workflow-id", handle.id)
        assert code == 0, err
        assert "QueryWorkflow" in out and handle.id in out
        await handle.signal(QueryWorkflow.finish)
        await handle.result()
        code, out, err = await run_cli(server, "workflow", "query", "--workflow-id", handle.id,
                                       "--name", "get_state", "--reject-condition", "not_open")
        assert code != 0
        assert "rejected" in err


# Bad input -----------------------------------------------------------------------------------


async def expect_rpc_error(call, code: RPCStatusCode, message: str | None = None) -> RPCError:
    with pytest.raises(RPCError) as caught:
        await call
    assert caught.value.status == code, (
        f"got {caught.value.status.name} ({caught.value.message!r}), expected {code.name}")
    if message is not None:
        assert message in caught.value.message
    return caught.value


def raw_query(client: Client, execution: WorkflowExecution, query: WorkflowQuery | None):
    request = QueryWorkflowRequest(namespace=client.namespace, execution=execution)
    if query is not None:
        request.query.CopyFrom(query)
    return client.workflow_service.query_workflow(request, timeout=RPC_TIMEOUT)


async def test_bad_query_requests(client: Client, task_queue: str):
    async with worker(client, task_queue):
        handle = await waiting_query_workflow(client, task_queue)
        execution = WorkflowExecution(workflow_id=handle.id)
        await expect_rpc_error(raw_query(client, execution, WorkflowQuery(query_type="")),
                               RPCStatusCode.INVALID_ARGUMENT, "QueryType is not set")
        await expect_rpc_error(raw_query(client, execution, None),
                               RPCStatusCode.INVALID_ARGUMENT, "WorkflowQuery is not set")
        await expect_rpc_error(
            raw_query(client, WorkflowExecution(workflow_id=handle.id, run_id=str(uuid.uuid4())),
                      WorkflowQuery(query_type="get_state")),
            RPCStatusCode.NOT_FOUND)
        await expect_rpc_error(
            raw_query(client, WorkflowExecution(workflow_id=unique_id("absent")),
                      WorkflowQuery(query_type="get_state")),
            RPCStatusCode.NOT_FOUND)
        # Still answering.
        assert await handle.query(QueryWorkflow.get_state) == "running (wait)"
        await handle.signal(QueryWorkflow.finish)
        await handle.result()


async def test_query_answer_with_a_forged_task_token(client: Client):
    for token, message in ((b"garbage", None), (b"", "Task token not set")):
        await expect_rpc_error(
            client.workflow_service.respond_query_task_completed(
                RespondQueryTaskCompletedRequest(
                    namespace=client.namespace, task_token=token,
                    completed_type=QueryResultType.QUERY_RESULT_TYPE_ANSWERED),
                timeout=RPC_TIMEOUT),
            RPCStatusCode.INVALID_ARGUMENT, message)
