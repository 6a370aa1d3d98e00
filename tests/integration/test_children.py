"""Child workflows, started with the SDK's child workflow API.

A parent's StartChildWorkflowExecution command leaves StartChildWorkflowExecutionInitiated in
its history, then ChildWorkflowExecutionStarted (or StartChildWorkflowExecutionFailed when the
id is taken) and, when the child closes, one ChildWorkflowExecution{Completed, Failed,
TimedOut, Canceled} event; each names the child's namespace, id, run and type and links back
to the initiated (and started) event. The child's WorkflowExecutionStarted names its parent
and root. Cancelling a child sends it a cancellation request from the parent; signalling it
goes through the parent's history like any external signal. When the parent closes (completes,
fails, is terminated, times out, continues as new), each running child gets its parent close
policy: terminated, asked to cancel, or left alone.

The expected event sequences, attributes and texts were read off Temporal's dev server
(temporal CLI 1.9.1, server 1.32.0) running the same workflows. Its `default` namespace has no
custom search attributes, so the start options tested here include a memo but no search
attributes.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import (
    ContinueAsNewInitiator,
    EventType,
    ParentClosePolicy,
    RetryState,
    StartChildWorkflowExecutionFailedCause,
    WorkflowIdReusePolicy,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
    TimeoutError as TemporalTimeoutError,
)
from temporalio.exceptions import RetryState as SdkRetryState
from temporalio.service import RPCError
from temporalio.worker import Worker

import child_workflows
from child_workflows import (
    CancelChildParent,
    ChildWorkflow,
    ClosingParent,
    ConflictParent,
    FanOutParent,
    ParentOfFailingChild,
    ParentWithOptions,
    ParentWorkflow,
    ReuseIdParent,
    SignalChildParent,
    TimeoutParent,
)
from helpers import (
    POLL_INTERVAL_S,
    decode,
    history_events,
    of_type,
    type_names,
    types_of,
    unique_id,
    wait_for_event,
    wait_for_status,
)
from test_process import temporal_cli

E = EventType
TASK = ["EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
# Temporal names its history service as the identity of what it does on a workflow's behalf.
HISTORY_SERVICE_IDENTITY = "history-service"
CLOSE_POLICY_REASON = "by parent close policy"
ALREADY_EXISTS = (StartChildWorkflowExecutionFailedCause
                  .START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS)
# What a parent's SDK makes of a child it cancelled, whatever the cancellation type.
CANCELLED_CHILD_SEEN = ["ChildWorkflowError", "Child Workflow execution cancelled",
                        "NON_RETRYABLE_FAILURE", ["CancelledError", "Cancelled"]]


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=child_workflows.WORKFLOWS,
                  **options)


def without_tasks(events: list[HistoryEvent]) -> list[str]:
    """The events' types, workflow task events left out: where a child's events fall among
    the parent's workflow tasks depends on timing."""
    return [t for t in types_of(events) if not t.startswith("EVENT_TYPE_WORKFLOW_TASK_")]


async def namespace_id(client: Client) -> str:
    response = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace))
    return response.namespace_info.id


async def waiting(client: Client, workflow_id: str, within_s: float = 20) -> list[HistoryEvent]:
    """Polls until `workflow_id` exists and has completed its first workflow task (a
    ChildWorkflow then waits for a signal); returns its history."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + within_s
    while True:
        try:
            events = await history_events(handle)
        except RPCError:  # not started yet
            events = []
        if any(e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"{workflow_id} not waiting after {within_s:g} s: "
                                 f"{types_of(events)}")
        await asyncio.sleep(POLL_INTERVAL_S)


async def wait_for_count(handle: WorkflowHandle, event_type: E.ValueType, count: int,
                         within_s: float = 20) -> list[HistoryEvent]:
    """Polls the history until it holds `count` events of `event_type`; returns it."""
    deadline = time.monotonic() + within_s
    while True:
        events = await history_events(handle)
        if len(of_type(events, event_type)) >= count:
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} {E.Name(event_type)} after {within_s:g} s:"
                                 f" {types_of(events)}")
        await asyncio.sleep(POLL_INTERVAL_S)


async def poll_query(handle: WorkflowHandle, query, within_s: float = 20) -> Any:
    """Queries until the answer is not None."""
    deadline = time.monotonic() + within_s
    while (answer := await handle.query(query)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{query} still None after {within_s:g} s")
        await asyncio.sleep(POLL_INTERVAL_S)
    return answer


def assert_names_child(attributes, client: Client, child_id: str, child_run_id: str,
                       workflow_type: str, initiated_id: int, started_id: int) -> None:
    """The attributes of a child-closed event (or a ChildWorkflowError) name the child."""
    assert attributes.namespace == client.namespace
    assert attributes.workflow_execution.workflow_id == child_id
    assert attributes.workflow_execution.run_id == child_run_id
    assert attributes.workflow_type.name == workflow_type
    assert attributes.initiated_event_id == initiated_id
    assert attributes.started_event_id == started_id


# Results and failures ------------------------------------------------------------------------


async def test_child_result_returns_to_the_parent(client: Client, task_queue: str,
                                                  worker_options: dict):
    """The child waits for a signal from the test, so that the parent's history is the same
    every time; the child's start names its parent and root, and describe shows them."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    ns_id = await namespace_id(client)
    async with worker(client, task_queue, **worker_options):
        parent = await client.start_workflow(ParentWorkflow.run, args=[child_id, "hello", True],
                                             id=parent_id, task_queue=task_queue)
        await waiting(client, child_id)
        # The parent's task that saw the child start is done too.
        await wait_for_count(parent, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2)
        child = client.get_workflow_handle(child_id)
        running = await child.describe()
        assert running.status == WorkflowExecutionStatus.RUNNING
        await child.signal(ChildWorkflow.finish, "from the test")
        result = await parent.result()

    events = await history_events(parent)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = events[4].start_child_workflow_execution_initiated_event_attributes
    assert initiated.namespace == client.namespace
    assert initiated.namespace_id == ns_id
    assert initiated.workflow_id == child_id
    assert initiated.workflow_type.name == "ChildWorkflow"
    assert initiated.task_queue.name == task_queue  # the parent's, by default
    assert decode(client, initiated.input) == ["hello", True]
    assert initiated.parent_close_policy == ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE
    assert (initiated.workflow_id_reuse_policy
            == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
    assert initiated.workflow_task_completed_event_id == 4
    assert not initiated.HasField("workflow_execution_timeout")
    assert initiated.workflow_run_timeout.ToTimedelta() == timedelta(0)
    assert initiated.workflow_task_timeout.ToTimedelta() == timedelta(seconds=10)

    started = events[5].child_workflow_execution_started_event_attributes
    child_run_id = started.workflow_execution.run_id
    assert child_run_id
    assert started.namespace == client.namespace
    assert started.namespace_id == ns_id
    assert started.initiated_event_id == 5
    assert started.workflow_execution.workflow_id == child_id
    assert started.workflow_type.name == "ChildWorkflow"

    completed = events[9].child_workflow_execution_completed_event_attributes
    assert_names_child(completed, client, child_id, child_run_id, "ChildWorkflow", 5, 6)
    assert completed.namespace_id == ns_id
    assert decode(client, completed.result) == [result]
    assert result == {
        "value": "hello", "notes": ["from the test"], "workflow_id": child_id,
        "run_id": child_run_id, "task_queue": task_queue, "attempt": 1,
        "parent": [client.namespace, parent_id, parent.result_run_id],
        "root": [parent_id, parent.result_run_id],
    }

    child_events = await history_events(child)
    assert types_of(child_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    child_started = child_events[0].workflow_execution_started_event_attributes
    assert child_started.parent_workflow_namespace == client.namespace
    assert child_started.parent_workflow_namespace_id == ns_id
    assert child_started.parent_workflow_execution.workflow_id == parent_id
    assert child_started.parent_workflow_execution.run_id == parent.result_run_id
    assert child_started.parent_initiated_event_id == 5
    assert child_started.root_workflow_execution.workflow_id == parent_id
    assert child_started.root_workflow_execution.run_id == parent.result_run_id
    assert child_started.workflow_type.name == "ChildWorkflow"
    assert child_started.task_queue.name == task_queue
    assert decode(client, child_started.input) == ["hello", True]
    assert child_started.attempt == 1
    assert child_started.first_execution_run_id == child_run_id
    assert child_started.original_execution_run_id == child_run_id
    assert child_started.identity == ""  # started by the history service, not a client

    for described in [running, await child.describe()]:
        assert described.parent_id == parent_id
        assert described.parent_run_id == parent.result_run_id
        assert described.root_id == parent_id
        assert described.root_run_id == parent.result_run_id
        info = described.raw_description.workflow_execution_info
        assert info.parent_namespace_id == ns_id
        assert info.parent_execution.workflow_id == parent_id
        assert info.root_execution.run_id == parent.result_run_id
    assert (await child.describe()).status == WorkflowExecutionStatus.COMPLETED

    # The parent has no parent and is its own root; its child is no longer pending.
    parent_described = await parent.describe()
    parent_info = parent_described.raw_description.workflow_execution_info
    assert not parent_info.HasField("parent_execution")
    assert parent_info.parent_namespace_id == ""
    assert parent_info.root_execution.workflow_id == parent_id
    assert parent_info.root_execution.run_id == parent.result_run_id
    assert list(parent_described.raw_description.pending_children) == []
    started_attributes = events[0].workflow_execution_started_event_attributes
    assert not started_attributes.HasField("parent_workflow_execution")
    assert not started_attributes.HasField("root_workflow_execution")


async def test_failing_child_fails_the_parent(client: Client, task_queue: str):
    """The parent does not catch its child's failure: the client sees the parent's failure,
    a ChildWorkflowError caused by the child's ApplicationError."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue):
        parent = await client.start_workflow(ParentOfFailingChild.run,
                                             args=[child_id, "child broke"], id=parent_id,
                                             task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await parent.result()
    child_run_id = (await client.get_workflow_handle(child_id).describe()).run_id

    error = failure.value.cause
    assert isinstance(error, ChildWorkflowError)
    assert error.message == "Child Workflow execution failed"
    assert error.namespace == client.namespace
    assert (error.workflow_id, error.run_id) == (child_id, child_run_id)
    assert error.workflow_type == "FailingChild"
    assert (error.initiated_event_id, error.started_event_id) == (5, 6)
    assert error.retry_state == SdkRetryState.RETRY_POLICY_NOT_SET
    cause = error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "child broke"
    assert cause.type == "ChildBroke"
    assert cause.details == ("some detail",)
    assert not cause.non_retryable

    events = await history_events(parent)
    assert without_tasks(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    ]
    assert types_of(events)[-4:] == [*TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"]
    failed = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED)[0]
    attributes = failed.child_workflow_execution_failed_event_attributes
    assert_names_child(attributes, client, child_id, child_run_id, "FailingChild", 5, 6)
    assert attributes.retry_state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    assert attributes.failure.message == "child broke"
    assert attributes.failure.application_failure_info.type == "ChildBroke"
    assert decode(client, attributes.failure.application_failure_info.details) == ["some detail"]

    parent_failed = events[-1].workflow_execution_failed_event_attributes
    assert parent_failed.retry_state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    assert parent_failed.failure.message == "Child Workflow execution failed"
    info = parent_failed.failure.child_workflow_execution_failure_info
    assert info.namespace == client.namespace
    assert info.workflow_execution.workflow_id == child_id
    assert info.workflow_execution.run_id == child_run_id
    assert info.workflow_type.name == "FailingChild"
    assert (info.initiated_event_id, info.started_event_id) == (5, 6)
    assert info.retry_state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    assert parent_failed.failure.cause.message == "child broke"
    assert parent_failed.failure.cause.application_failure_info.type == "ChildBroke"

    child = client.get_workflow_handle(child_id)
    child_events = await history_events(child)
    assert types_of(child_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"]
    assert (child_events[-1].workflow_execution_failed_event_attributes.retry_state
            == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET)
    assert (await child.describe()).status == WorkflowExecutionStatus.FAILED


async def test_child_execution_timeout(client: Client, task_queue: str):
    """A child given 2 s that waits for a signal times out; the parent sees a
    ChildWorkflowError caused by a TimeoutError."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue):
        began = time.monotonic()
        parent = await client.start_workflow(TimeoutParent.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        seen = await parent.result()
        assert time.monotonic() - began >= 2
    assert seen == ["ChildWorkflowError", "Child Workflow execution timed out", "TIMEOUT",
                    ["TimeoutError", "Timed out", "START_TO_CLOSE"]]

    events = await history_events(parent)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = events[4].start_child_workflow_execution_initiated_event_attributes
    # Only the execution timeout was given: the run timeout defaults to it, and the
    # workflow task timeout (10 s by default) is cut down to it.
    assert initiated.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=2)
    assert initiated.workflow_run_timeout.ToTimedelta() == timedelta(seconds=2)
    assert initiated.workflow_task_timeout.ToTimedelta() == timedelta(seconds=2)
    child_run_id = events[5].child_workflow_execution_started_event_attributes \
        .workflow_execution.run_id
    timed_out = events[9].child_workflow_execution_timed_out_event_attributes
    assert_names_child(timed_out, client, child_id, child_run_id, "ChildWorkflow", 5, 6)
    assert timed_out.retry_state == RetryState.RETRY_STATE_TIMEOUT

    child = client.get_workflow_handle(child_id)
    child_events = await history_events(child)
    assert types_of(child_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT"]
    child_started = child_events[0].workflow_execution_started_event_attributes
    assert child_started.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=2)
    assert (child_events[-1].workflow_execution_timed_out_event_attributes.retry_state
            == RetryState.RETRY_STATE_TIMEOUT)
    assert (await child.describe()).status == WorkflowExecutionStatus.TIMED_OUT


# Start options and ids -----------------------------------------------------------------------


async def test_child_start_options(client: Client, task_queue: str):
    """Id, another task queue (served by a second worker), timeouts, a retry policy (the
    child fails twice, then succeeds: three runs, one ChildWorkflowExecutionCompleted) and a
    memo."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    child_queue = f"{task_queue}-children"
    async with worker(client, task_queue), worker(client, child_queue):
        parent = await client.start_workflow(ParentWithOptions.run,
                                             args=[child_id, child_queue, 2], id=parent_id,
                                             task_queue=task_queue)
        result = await parent.result()
    assert result["attempt"] == 3
    assert result["task_queue"] == child_queue
    assert result["memo"] == "parent"
    assert result["parent"] == [client.namespace, parent_id, parent.result_run_id]
    assert result["root"] == [parent_id, parent.result_run_id]

    events = await history_events(parent)
    assert without_tasks(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = events[4].start_child_workflow_execution_initiated_event_attributes
    assert initiated.workflow_id == child_id
    assert initiated.task_queue.name == child_queue
    assert initiated.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=60)
    assert initiated.workflow_run_timeout.ToTimedelta() == timedelta(seconds=30)
    assert initiated.workflow_task_timeout.ToTimedelta() == timedelta(seconds=7)
    retry = initiated.retry_policy
    assert retry.initial_interval.ToTimedelta() == timedelta(milliseconds=200)
    assert retry.backoff_coefficient == 1.0
    # Not given: the server sets it to 100 initial intervals.
    assert retry.maximum_interval.ToTimedelta() == timedelta(seconds=20)
    assert retry.maximum_attempts == 5
    assert {k: client.data_converter.payload_converter.from_payload(v)
            for k, v in initiated.memo.fields.items()} == {"owner": "parent", "size": 3}

    # The parent hears of the first run's start and of the last run's completion.
    first_run = events[5].child_workflow_execution_started_event_attributes \
        .workflow_execution.run_id
    completed = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)[0] \
        .child_workflow_execution_completed_event_attributes
    assert completed.workflow_execution.run_id == result["run_id"] != first_run
    assert (completed.initiated_event_id, completed.started_event_id) == (5, 6)
    assert decode(client, completed.result) == [result]

    runs = [first_run]
    for attempt in (1, 2, 3):
        run = client.get_workflow_handle(child_id, run_id=runs[-1])
        run_events = await history_events(run)
        assert types_of(run_events)[:4] == ["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK]
        started = run_events[0].workflow_execution_started_event_attributes
        assert started.attempt == attempt
        assert started.first_execution_run_id == first_run
        assert started.parent_workflow_execution.workflow_id == parent_id
        assert started.parent_workflow_execution.run_id == parent.result_run_id
        assert started.parent_initiated_event_id == 5
        assert started.root_workflow_execution.workflow_id == parent_id
        assert started.task_queue.name == child_queue
        assert started.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=60)
        assert started.workflow_run_timeout.ToTimedelta() == timedelta(seconds=30)
        assert started.workflow_task_timeout.ToTimedelta() == timedelta(seconds=7)
        assert started.retry_policy.maximum_attempts == 5
        assert set(started.memo.fields) == {"owner", "size"}
        if attempt == 1:
            assert not started.continued_execution_run_id
        else:
            assert started.continued_execution_run_id == runs[-2]
            assert started.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY
            assert started.continued_failure.message == \
                f"attempt {attempt - 1} fails on purpose"
            # The retry waits before the run's first workflow task (Temporal waited about
            # 0.85 s here, not the 200 ms initial interval).
            backoff = started.first_workflow_task_backoff.ToTimedelta()
            assert timedelta(0) < backoff <= timedelta(seconds=1)
        described = await run.describe()
        assert described.parent_id == parent_id
        assert await described.memo() == {"owner": "parent", "size": 3}
        config = described.raw_description.execution_config
        assert config.task_queue.name == child_queue
        assert config.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=60)
        assert config.workflow_run_timeout.ToTimedelta() == timedelta(seconds=30)
        assert config.default_workflow_task_timeout.ToTimedelta() == timedelta(seconds=7)
        if attempt < 3:
            assert types_of(run_events)[4:] == ["EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"]
            failed = run_events[-1].workflow_execution_failed_event_attributes
            assert failed.retry_state == RetryState.RETRY_STATE_IN_PROGRESS
            assert failed.failure.message == f"attempt {attempt} fails on purpose"
            assert described.status == WorkflowExecutionStatus.FAILED
            runs.append(failed.new_execution_run_id)
        else:
            assert types_of(run_events)[4:] == ["EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]
            assert described.status == WorkflowExecutionStatus.COMPLETED
    assert runs[-1] == result["run_id"]
    assert len(set(runs)) == 3


async def test_reject_duplicate_child_id_after_a_completed_run(client: Client,
                                                               task_queue: str):
    """A child id whose last run completed: REJECT_DUPLICATE refuses it, ALLOW_DUPLICATE
    starts a new run."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue):
        parent = await client.start_workflow(ReuseIdParent.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        first, rejected, allowed = await parent.result()
    assert first[0] == "ok" and first[1]["value"] == "first"
    assert rejected == ["WorkflowAlreadyStartedError", "Workflow execution already started",
                        child_id, "ChildWorkflow"]
    assert allowed[0] == "ok" and allowed[1]["value"] == "third"
    assert allowed[1]["run_id"] != first[1]["run_id"]

    events = await history_events(parent)
    assert without_tasks(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = of_type(events, E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    policies = [e.start_child_workflow_execution_initiated_event_attributes
                .workflow_id_reuse_policy for e in initiated]
    assert policies == [WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
                        WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
                        WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE]
    failed = of_type(events, E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED)[0] \
        .start_child_workflow_execution_failed_event_attributes
    assert failed.cause == ALREADY_EXISTS
    assert failed.initiated_event_id == initiated[1].event_id
    assert failed.namespace == client.namespace
    assert failed.workflow_id == child_id
    assert failed.workflow_type.name == "ChildWorkflow"
    started = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
    assert [e.child_workflow_execution_started_event_attributes.workflow_execution.run_id
            for e in started] == [first[1]["run_id"], allowed[1]["run_id"]]
    assert [e.child_workflow_execution_started_event_attributes.initiated_event_id
            for e in started] == [initiated[0].event_id, initiated[2].event_id]


async def test_child_id_taken_by_a_running_workflow(client: Client, task_queue: str):
    """The parent's child start fails with WorkflowAlreadyStartedError; the running
    workflow is left alone."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue):
        other = await client.start_workflow(ChildWorkflow.run, args=["already here", True],
                                            id=child_id, task_queue=task_queue)
        await waiting(client, child_id)
        parent = await client.start_workflow(ConflictParent.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        assert await parent.result() == ["WorkflowAlreadyStartedError",
                                         "Workflow execution already started", child_id,
                                         "ChildWorkflow"]
        assert (await other.describe()).status == WorkflowExecutionStatus.RUNNING
        await other.signal(ChildWorkflow.finish, "done")
        other_result = await other.result()
    assert other_result["notes"] == ["done"]
    assert other_result["parent"] is None and other_result["root"] is None

    events = await history_events(parent)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    failed = events[5].start_child_workflow_execution_failed_event_attributes
    assert failed.cause == ALREADY_EXISTS
    assert failed.initiated_event_id == 5
    assert failed.namespace == client.namespace
    assert failed.namespace_id == await namespace_id(client)
    assert failed.workflow_id == child_id
    assert failed.workflow_type.name == "ChildWorkflow"
    other_started = (await history_events(other))[0].workflow_execution_started_event_attributes
    assert not other_started.HasField("parent_workflow_execution")


# Cancellation --------------------------------------------------------------------------------


@pytest.mark.parametrize("cancellation_type", ["TRY_CANCEL", "WAIT_CANCELLATION_REQUESTED",
                                               "WAIT_CANCELLATION_COMPLETED", "ABANDON"])
async def test_cancel_child(client: Client, task_queue: str, worker_options: dict,
                            cancellation_type: str):
    """The parent cancels its child as soon as it has started, and stays open until the test
    lets it finish. The child, asked to cancel, waits for the test's `release` and then ends
    Canceled. ABANDON sends no request at all: the child completes when signalled."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue, **worker_options):
        parent = await client.start_workflow(
            CancelChildParent.run, args=[child_id, cancellation_type, True], id=parent_id,
            task_queue=task_queue)
        child = client.get_workflow_handle(child_id)
        await waiting(client, child_id)
        if cancellation_type == "ABANDON":
            assert await poll_query(parent, CancelChildParent.seen_so_far) == \
                CANCELLED_CHILD_SEEN
            await child.signal(ChildWorkflow.finish, "abandoned")
            assert (await child.result())["notes"] == ["abandoned"]
            await wait_for_count(parent, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 3)
        else:
            await wait_for_event(parent, E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
            # The parent's task that saw the request delivered is done.
            await wait_for_count(parent, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 3)
            await wait_for_count(child, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2)
            seen = await parent.query(CancelChildParent.seen_so_far)
            # TRY_CANCEL gives up on the child at once; the Python SDK waits for the child to
            # close with either WAIT_ type.
            assert seen == (CANCELLED_CHILD_SEEN if cancellation_type == "TRY_CANCEL" else None)
            await child.signal(ChildWorkflow.release)
            with pytest.raises(WorkflowFailureError) as child_failure:
                await child.result()
            assert isinstance(child_failure.value.cause, CancelledError)
            await wait_for_count(parent, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 4)
            assert await parent.query(CancelChildParent.seen_so_far) == CANCELLED_CHILD_SEEN
        await parent.signal(CancelChildParent.finish)
        assert await parent.result() == CANCELLED_CHILD_SEEN

    events = await history_events(parent)
    child_events = await history_events(child)
    child_run_id = events[5].child_workflow_execution_started_event_attributes \
        .workflow_execution.run_id
    if cancellation_type == "ABANDON":
        assert types_of(events) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            *TASK,
            "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
            *TASK,
            # The parent is still open, so it hears of its abandoned child's completion.
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
            *TASK,
            "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
            *TASK,
            "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
        ]
        assert types_of(child_events) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
            "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", *TASK,
            "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]
        return

    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        *TASK,
        "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        *TASK,
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated = events[9].request_cancel_external_workflow_execution_initiated_event_attributes
    assert initiated.namespace == client.namespace
    assert initiated.workflow_execution.workflow_id == child_id
    assert initiated.workflow_execution.run_id == child_run_id
    assert initiated.child_workflow_only
    assert initiated.workflow_task_completed_event_id == 9
    requested = events[10].external_workflow_execution_cancel_requested_event_attributes
    assert requested.initiated_event_id == 10
    assert requested.namespace == client.namespace
    assert requested.workflow_execution.workflow_id == child_id
    assert requested.workflow_execution.run_id == child_run_id
    canceled = events[14].child_workflow_execution_canceled_event_attributes
    assert_names_child(canceled, client, child_id, child_run_id, "ChildWorkflow", 5, 6)

    assert types_of(child_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED", *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"]
    cancel = child_events[4].workflow_execution_cancel_requested_event_attributes
    assert cancel.external_initiated_event_id == 10
    assert cancel.external_workflow_execution.workflow_id == parent_id
    assert cancel.external_workflow_execution.run_id == parent.result_run_id
    assert cancel.identity == HISTORY_SERVICE_IDENTITY
    assert cancel.cause == ""
    assert (await child.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_try_cancel_in_the_closing_task_is_not_delivered(client: Client,
                                                               task_queue: str):
    """A parent that cancels a child with TRY_CANCEL and completes in the same workflow task:
    the request is recorded but never delivered, since its sender has closed (the child was
    started with parent close policy ABANDON, so nothing else reaches it)."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue):
        parent = await client.start_workflow(
            CancelChildParent.run, args=[child_id, "TRY_CANCEL", False], id=parent_id,
            task_queue=task_queue)
        assert await parent.result() == CANCELLED_CHILD_SEEN
        events = await history_events(parent)
        assert types_of(events) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            *TASK,
            "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
            *TASK,
            "EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
        ]
        child = client.get_workflow_handle(child_id)
        await asyncio.sleep(1.5)  # time enough for a delivery that should not happen
        assert types_of(await history_events(child)) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK]
        await child.signal(ChildWorkflow.finish, "never cancelled")
        assert (await child.result())["notes"] == ["never cancelled"]


# Parent close policy -------------------------------------------------------------------------

PARENT_CLOSED_AS = {
    "complete": "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    "fail": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    "terminate": "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
    "timeout": "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT",
    "continue": "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
}


@pytest.mark.parametrize("closing", list(PARENT_CLOSED_AS))
@pytest.mark.parametrize("policy", ["TERMINATE", "REQUEST_CANCEL", "ABANDON"])
async def test_parent_close_policy(client: Client, task_queue: str, policy: str, closing: str):
    """The parent starts a child that waits, then closes (the child has finished its first
    workflow task by then). TERMINATE: the history service terminates the child.
    REQUEST_CANCEL: it asks the child to cancel, naming the closed parent run (the child then
    waits for `release` and ends Canceled). ABANDON: the child keeps running and completes
    when signalled."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    how = "wait" if closing in ("terminate", "timeout") else closing
    async with worker(client, task_queue):
        parent = await client.start_workflow(
            ClosingParent.run, args=[child_id, policy, how], id=parent_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=2) if closing == "timeout" else None)
        parent_run = client.get_workflow_handle(parent_id, run_id=parent.result_run_id)
        await waiting(client, child_id)
        await wait_for_event(parent_run, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        if closing == "terminate":
            await parent.terminate(reason="the test ends the parent")
        elif closing != "timeout":
            await parent.signal(ClosingParent.close)

        if closing == "complete":
            assert await parent.result() == "parent done"
        elif closing == "continue":
            assert await parent.result() == "continued"
            latest = await client.get_workflow_handle(parent_id).describe()
            assert latest.run_id != parent.result_run_id
            assert list(latest.raw_description.pending_children) == []
        else:
            with pytest.raises(WorkflowFailureError) as failure:
                await parent.result()
            expected = {"fail": ApplicationError, "terminate": TerminatedError,
                        "timeout": TemporalTimeoutError}[closing]
            assert isinstance(failure.value.cause, expected)
        parent_events = await history_events(parent_run)
        assert without_tasks(parent_events) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
            "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
            *(["EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"] if how != "wait" else []),
            PARENT_CLOSED_AS[closing],
        ]
        initiated = parent_events[4].start_child_workflow_execution_initiated_event_attributes
        assert initiated.parent_close_policy == ParentClosePolicy.Value(
            f"PARENT_CLOSE_POLICY_{policy}")

        child = client.get_workflow_handle(child_id)
        if policy == "TERMINATE":
            await wait_for_status(child, WorkflowExecutionStatus.TERMINATED)
            child_events = await history_events(child)
            assert types_of(child_events) == [
                "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
                "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"]
            terminated = child_events[-1].workflow_execution_terminated_event_attributes
            assert terminated.reason == CLOSE_POLICY_REASON
            assert terminated.identity == HISTORY_SERVICE_IDENTITY
            assert not terminated.details.payloads
        elif policy == "REQUEST_CANCEL":
            await wait_for_count(child, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2)
            await child.signal(ChildWorkflow.release)
            with pytest.raises(WorkflowFailureError) as child_failure:
                await child.result()
            assert isinstance(child_failure.value.cause, CancelledError)
            child_events = await history_events(child)
            assert types_of(child_events) == [
                "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
                "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED", *TASK,
                "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", *TASK,
                "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"]
            cancel = child_events[4].workflow_execution_cancel_requested_event_attributes
            assert cancel.external_workflow_execution.workflow_id == parent_id
            assert cancel.external_workflow_execution.run_id == parent.result_run_id
            assert cancel.identity == HISTORY_SERVICE_IDENTITY
            assert cancel.external_initiated_event_id == 0  # no initiated event to point at
            assert cancel.cause == ""
            assert (await child.describe()).status == WorkflowExecutionStatus.CANCELED
        else:
            assert (await child.describe()).status == WorkflowExecutionStatus.RUNNING
            await child.signal(ChildWorkflow.finish, "after the parent")
            result = await child.result()
            assert result["notes"] == ["after the parent"]
            # It still names the parent run that has closed.
            assert result["parent"] == [client.namespace, parent_id, parent.result_run_id]
            assert types_of(await history_events(child)) == [
                "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
                "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", *TASK,
                "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]


# Signals, describe, many children ------------------------------------------------------------


async def test_signal_child_from_the_parent(client: Client, task_queue: str,
                                            worker_options: dict):
    """The parent signals its child through the child handle: an external signal limited to
    the parent's child, delivered from the history service."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue, **worker_options):
        parent = await client.start_workflow(SignalChildParent.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        result = await parent.result()
    assert result["notes"] == ["from parent"]

    events = await history_events(parent)
    assert without_tasks(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    initiated_event = of_type(events, E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)[0]
    initiated = initiated_event.signal_external_workflow_execution_initiated_event_attributes
    assert initiated.namespace == client.namespace
    assert initiated.workflow_execution.workflow_id == child_id
    assert initiated.workflow_execution.run_id == ""  # the SDK names the child by id only
    assert initiated.signal_name == "finish"
    assert decode(client, initiated.input) == ["from parent"]
    assert initiated.child_workflow_only
    assert initiated.workflow_task_completed_event_id == initiated_event.event_id - 1
    signaled = of_type(events, E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED)[0] \
        .external_workflow_execution_signaled_event_attributes
    assert signaled.initiated_event_id == initiated_event.event_id
    assert signaled.namespace == client.namespace
    assert signaled.workflow_execution.workflow_id == child_id
    assert signaled.workflow_execution.run_id == ""

    child_events = await history_events(client.get_workflow_handle(child_id))
    assert types_of(child_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", *TASK,
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]
    delivered = child_events[4].workflow_execution_signaled_event_attributes
    assert delivered.signal_name == "finish"
    assert decode(client, delivered.input) == ["from parent"]
    assert delivered.identity == HISTORY_SERVICE_IDENTITY
    assert delivered.external_workflow_execution.workflow_id == parent_id
    assert delivered.external_workflow_execution.run_id == parent.result_run_id


async def test_describe_lists_pending_children(server, client: Client, task_queue: str):
    """While the child runs, the parent's describe (and `temporal workflow describe`) lists
    it among pending children; once it has closed, the list is empty."""
    child_id, parent_id = unique_id("child"), unique_id("parent")
    async with worker(client, task_queue):
        parent = await client.start_workflow(ParentWorkflow.run, args=[child_id, "x", True],
                                             id=parent_id, task_queue=task_queue)
        events = await wait_for_event(parent, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        child_run_id = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)[0] \
            .child_workflow_execution_started_event_attributes.workflow_execution.run_id
        [pending] = (await parent.describe()).raw_description.pending_children
        assert pending.workflow_id == child_id
        assert pending.run_id == child_run_id
        assert pending.workflow_type_name == "ChildWorkflow"
        assert pending.initiated_id == 5
        assert pending.parent_close_policy == ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE

        process = await asyncio.create_subprocess_exec(
            temporal_cli(), "workflow", "describe", "--address", server.address,
            "--namespace", client.namespace, "--workflow-id", parent_id, "-o", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        described = json.loads(out)
        assert described["pendingChildren"] == [{
            "workflowId": child_id, "runId": child_run_id, "workflowTypeName": "ChildWorkflow",
            "initiatedId": "5", "parentClosePolicy": "PARENT_CLOSE_POLICY_TERMINATE"}]
        assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"

        await client.get_workflow_handle(child_id).signal(ChildWorkflow.finish, "done")
        await parent.result()
    assert list((await parent.describe()).raw_description.pending_children) == []


@pytest.mark.deadline(120)
async def test_ten_children_at_once(client: Client, task_queue: str):
    """Ten children with different ids (so on different history shards), all started in one
    workflow task; each result comes back to the parent, each child names it."""
    child_ids = [unique_id(f"fan{i}") for i in range(10)]
    parent_id = unique_id("parent")
    async with worker(client, task_queue):
        parent = await client.start_workflow(FanOutParent.run, child_ids, id=parent_id,
                                             task_queue=task_queue)
        results = await parent.result()
    assert [r["value"] for r in results] == child_ids
    assert all(r["parent"] == [client.namespace, parent_id, parent.result_run_id]
               for r in results)

    events = await history_events(parent)
    initiated = of_type(events, E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    started = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
    completed = of_type(events, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
    assert (len(initiated), len(started), len(completed)) == (10, 10, 10), types_of(events)
    # All ten were asked for in the first workflow task, in order.
    assert [e.event_id for e in initiated] == list(range(5, 15))
    assert {e.start_child_workflow_execution_initiated_event_attributes
            .workflow_task_completed_event_id for e in initiated} == {4}
    by_initiated = {e.event_id: e.start_child_workflow_execution_initiated_event_attributes
                    .workflow_id for e in initiated}
    assert list(by_initiated.values()) == child_ids
    started_ids = {}
    for e in started:
        attributes = e.child_workflow_execution_started_event_attributes
        assert attributes.workflow_execution.workflow_id == \
            by_initiated[attributes.initiated_event_id]
        started_ids[attributes.initiated_event_id] = e.event_id
    results_by_id = {r["workflow_id"]: r for r in results}
    for e in completed:
        attributes = e.child_workflow_execution_completed_event_attributes
        child_id = by_initiated[attributes.initiated_event_id]
        assert attributes.workflow_execution.workflow_id == child_id
        assert attributes.workflow_execution.run_id == results_by_id[child_id]["run_id"]
        assert attributes.started_event_id == started_ids[attributes.initiated_event_id]
        assert decode(client, attributes.result) == [results_by_id[child_id]]
    assert type_names([events[-1].event_type]) == ["EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]
    for initiated_id, child_id in by_initiated.items():
        child_started = (await history_events(client.get_workflow_handle(child_id)))[0] \
            .workflow_execution_started_event_attributes
        assert child_started.parent_initiated_event_id == initiated_id
        assert child_started.parent_workflow_execution.run_id == parent.result_run_id
