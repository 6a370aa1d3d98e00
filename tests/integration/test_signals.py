"""Signals and signal-with-start, as Temporal records and delivers them.

The expected event sequences were read off Temporal's dev server (temporal CLI 1.9.1, server
1.32.0) running the same workflows: run these tests against it with
ALMANAC_TEST_ADDRESS=127.0.0.1:7233 to see them pass there.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.workflowservice.v1 import (
    GetSystemInfoRequest,
    SignalWorkflowExecutionRequest,
)
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    WorkflowExecutionStatus,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import message_workflows
from helpers import decode, history_events, of_type, pinned, types_of, unique_id, wait_for_event
from message_workflows import (
    BusyFirstTaskWorkflow,
    FailsUntilSignaledWorkflow,
    ReturnOnFirstSignalWorkflow,
    SignalWorkflow,
)

RPC_TIMEOUT = timedelta(seconds=10)
E = EventType


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=message_workflows.WORKFLOWS,
                  activities=message_workflows.ACTIVITIES, **options)


class _HeaderOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, header: Payload) -> None:
        super().__init__(next)
        self._header = header

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        input.headers = {**input.headers, "almanac-test": self._header}
        await super().signal_workflow(input)


class SignalHeaderInterceptor(Interceptor):
    """Puts an `almanac-test` header on every signal the client sends."""

    def __init__(self, header: Payload) -> None:
        self.header = header

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _HeaderOutbound(next, self.header)


# Delivery ------------------------------------------------------------------------------------


async def test_signal_by_method_by_name_and_dynamic(
    server, client: Client, task_queue: str, worker_options: dict
):
    """Three signals wait in the history before the first workflow task: one for a handler
    method, one for a handler with a custom name, one that only a dynamic handler takes. They
    are recorded with the sender's name, input, identity and header."""
    header = client.data_converter.payload_converter.to_payloads(["header value"])[0]
    sender = await Client.connect(server.address, identity="signal-test-sender",
                                  interceptors=[SignalHeaderInterceptor(header)])
    handle = await client.start_workflow(SignalWorkflow.run, 3, id=unique_id("sig"),
                                         task_queue=task_queue)
    signaller = sender.get_workflow_handle(handle.id)
    await signaller.signal(SignalWorkflow.add, "by method")
    await signaller.signal("custom-signal", "by name")
    await signaller.signal("not-declared", "dynamic")

    async with worker(client, task_queue, **worker_options):
        result = await handle.result()
    assert result == [["add", "by method"], ["custom-signal", "by name"],
                      ["dynamic:not-declared", "dynamic"]]

    events = await history_events(handle)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    signaled = [e.workflow_execution_signaled_event_attributes
                for e in of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)]
    assert [s.signal_name for s in signaled] == ["add", "custom-signal", "not-declared"]
    assert [decode(client, s.input) for s in signaled] == [["by method"], ["by name"],
                                                           ["dynamic"]]
    for s in signaled:
        assert s.identity == "signal-test-sender"
        assert dict(s.header.fields) == {"almanac-test": header}
        assert s.request_id  # the SDK sends one; Temporal records it
        assert not s.HasField("external_workflow_execution")


async def test_signal_without_header_records_none(client: Client, task_queue: str):
    handle = await client.start_workflow(SignalWorkflow.run, 1, id=unique_id("sig"),
                                         task_queue=task_queue)
    await handle.signal(SignalWorkflow.add, "plain")
    events = await history_events(handle)
    signaled = of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert len(signaled) == 1, types_of(events)
    attributes = signaled[0].workflow_execution_signaled_event_attributes
    assert attributes.identity == client.identity
    assert len(attributes.header.fields) == 0
    await handle.terminate(reason="test cleanup")


async def test_signal_to_closed_workflow_is_not_found(client: Client, task_queue: str):
    handle = await client.start_workflow(SignalWorkflow.run, 1, id=unique_id("sig"),
                                         task_queue=task_queue)
    await handle.signal(SignalWorkflow.add, "only")
    async with worker(client, task_queue):
        assert await handle.result() == [["add", "only"]]
    before = await history_events(handle)
    with pytest.raises(RPCError) as closed:
        await handle.signal(SignalWorkflow.add, "too late")
    assert closed.value.status == RPCStatusCode.NOT_FOUND
    assert "workflow execution already completed" in closed.value.message
    assert await history_events(handle) == before


async def test_signal_to_unknown_workflow_is_not_found(client: Client):
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(unique_id("absent")).signal(SignalWorkflow.add, "x")
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_same_request_id_signals_once(client: Client, task_queue: str):
    handle = await client.start_workflow(SignalWorkflow.run, 2, id=unique_id("sig"),
                                         task_queue=task_queue)
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=handle.id),
        signal_name="add",
        input=Payloads(payloads=await client.data_converter.encode(["once"])),
        identity="almanac-integration-tests",
        request_id=f"signal-{uuid.uuid4()}",
    )
    await client.workflow_service.signal_workflow_execution(request, timeout=RPC_TIMEOUT)
    await client.workflow_service.signal_workflow_execution(request, timeout=RPC_TIMEOUT)
    await handle.signal(SignalWorkflow.add, "second")

    async with worker(client, task_queue):
        assert await handle.result() == [["add", "once"], ["add", "second"]]
    events = await history_events(handle)
    signaled = [e.workflow_execution_signaled_event_attributes
                for e in of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)]
    assert len(signaled) == 2, types_of(events)
    assert signaled[0].request_id == request.request_id
    assert signaled[0].identity == "almanac-integration-tests"


async def test_signal_during_a_workflow_task_comes_in_the_next_one(
    client: Client, task_queue: str, worker_options: dict
):
    """The first workflow task holds a 2 s local activity. A signal sent meanwhile waits
    (buffered) until that task completes: it is written after the task's events and wakes a
    new task."""
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(BusyFirstTaskWorkflow.run, 2.0,
                                             id=unique_id("busy"), task_queue=task_queue)
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        await handle.signal(BusyFirstTaskWorkflow.add, "during the task")
        assert await handle.result() == ["paused 2 s", "during the task"]
    assert types_of(await history_events(handle)) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
        "EVENT_TYPE_MARKER_RECORDED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]


async def test_many_rapid_signals_each_seen_once(
    client: Client, task_queue: str, worker_options: dict
):
    count = 40
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(message_workflows.CountSignalsWorkflow.run, count,
                                             id=unique_id("rapid"), task_queue=task_queue)
        await asyncio.gather(*(handle.signal("hit", i) for i in range(count)))
        values = await handle.result()
    assert sorted(values) == list(range(count))
    events = await history_events(handle)
    assert len(of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)) == count
    # However the signals fell between workflow tasks, the tasks never overlap.
    open_task = False
    for e in events:
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            assert not open_task, types_of(events)
            open_task = True
        elif e.event_type in (E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                              E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                              E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
            open_task = False


async def test_completion_with_unseen_signals_is_refused(
    client: Client, task_queue: str, worker_options: dict
):
    """The workflow completes in the task that sees its first signal; nine more signals
    arrive while that task runs. Temporal refuses the completion (the task fails with
    UNHANDLED_COMMAND), writes the nine signals, and the next task sees all ten."""
    handle = await client.start_workflow(ReturnOnFirstSignalWorkflow.run, 1.5,
                                         id=unique_id("refused"), task_queue=task_queue)
    await handle.signal(ReturnOnFirstSignalWorkflow.hit, 0)
    async with worker(client, task_queue, **worker_options):
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        await asyncio.gather(*(handle.signal(ReturnOnFirstSignalWorkflow.hit, i)
                               for i in range(1, 10)))
        values = await handle.result()
    assert values[0] == 0
    assert sorted(values) == list(range(10))

    events = await history_events(handle)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_FAILED",
        *["EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"] * 9,
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
        "EVENT_TYPE_MARKER_RECORDED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    failed = events[4].workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
    assert failed.scheduled_event_id == 2 and failed.started_event_id == 4


async def test_signal_reaches_a_workflow_whose_task_keeps_failing(
    client: Client, task_queue: str, worker_options: dict
):
    """The workflow code raises until it has a signal: its first task fails, the retries
    fail without being recorded, and a signal sent meanwhile is recorded and reaches the
    next attempt, which completes."""
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            FailsUntilSignaledWorkflow.run, id=unique_id("failing"), task_queue=task_queue,
            task_timeout=timedelta(seconds=2))
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        await handle.signal(FailsUntilSignaledWorkflow.add, "the fix")
        assert await handle.result() == ["the fix"]
    events = await history_events(handle)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_FAILED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ]
    failed = events[3].workflow_task_failed_event_attributes
    assert failed.cause == \
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
    assert failed.failure.message == "workflow code bug: no signal yet"


# Signal-with-start ---------------------------------------------------------------------------


async def signal_with_start(client: Client, workflow_id: str, task_queue: str, value: str,
                            expected: int = 1, **options: Any):
    return await client.start_workflow(
        SignalWorkflow.run, expected, id=workflow_id, task_queue=task_queue,
        start_signal="add", start_signal_args=[value], **options)


async def test_signal_with_start_starts_a_new_run(client: Client, task_queue: str):
    handle = await signal_with_start(client, unique_id("sws"), task_queue, "first")
    events = await history_events(handle)
    assert types_of(events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    ]
    started = events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "SignalWorkflow"
    assert decode(client, started.input) == [1]
    signaled = events[1].workflow_execution_signaled_event_attributes
    assert signaled.signal_name == "add"
    assert decode(client, signaled.input) == ["first"]
    assert signaled.identity == client.identity
    assert (await handle.describe()).run_id == handle.result_run_id
    async with worker(client, task_queue):
        assert await handle.result() == [["add", "first"]]


async def test_signal_with_start_signals_a_running_workflow(client: Client, task_queue: str):
    workflow_id = unique_id("sws")
    running = await client.start_workflow(SignalWorkflow.run, 2, id=workflow_id,
                                          task_queue=task_queue)
    again = await signal_with_start(client, workflow_id, task_queue, "to the running run")
    assert again.result_run_id == running.result_run_id
    assert types_of(await history_events(pinned(client, running))) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
    ]
    await signal_with_start(client, workflow_id, task_queue, "and again")
    async with worker(client, task_queue):
        assert await running.result() == [["add", "to the running run"], ["add", "and again"]]
    assert (await client.get_workflow_handle(workflow_id).describe()).run_id == \
        running.result_run_id


async def test_signal_with_start_carries_the_header_to_the_signal(
    server, client: Client, task_queue: str
):
    header = client.data_converter.payload_converter.to_payloads(["start header"])[0]

    class StartHeaderOutbound(OutboundInterceptor):
        async def start_workflow(self, input):
            input.headers = {**input.headers, "almanac-test": header}
            return await super().start_workflow(input)

    class StartHeaderInterceptor(Interceptor):
        def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
            return StartHeaderOutbound(next)

    sender = await Client.connect(server.address, interceptors=[StartHeaderInterceptor()])
    handle = await signal_with_start(sender, unique_id("sws"), task_queue, "with header")
    events = await history_events(handle)
    started = events[0].workflow_execution_started_event_attributes
    signaled = events[1].workflow_execution_signaled_event_attributes
    assert dict(started.header.fields) == {"almanac-test": header}
    assert dict(signaled.header.fields) == {"almanac-test": header}
    await handle.terminate(reason="test cleanup")


# After a closed run: which reuse policy lets signal-with-start begin a new run.
REUSE_CASES = {
    "allow_duplicate-after-completed": (WorkflowIDReusePolicy.ALLOW_DUPLICATE, "completed", True),
    "allow_duplicate-after-terminated": (WorkflowIDReusePolicy.ALLOW_DUPLICATE, "terminated",
                                         True),
    "reject_duplicate-after-completed": (WorkflowIDReusePolicy.REJECT_DUPLICATE, "completed",
                                         False),
    "reject_duplicate-after-terminated": (WorkflowIDReusePolicy.REJECT_DUPLICATE, "terminated",
                                          False),
    "failed_only-after-completed": (WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                                    "completed", False),
    "failed_only-after-terminated": (WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                                     "terminated", True),
}


@pytest.mark.parametrize("case", list(REUSE_CASES))
async def test_signal_with_start_on_a_closed_workflow(client: Client, task_queue: str,
                                                      case: str):
    policy, outcome, allowed = REUSE_CASES[case]
    workflow_id = unique_id("sws-closed")
    closed = await signal_with_start(client, workflow_id, task_queue, "first run")
    if outcome == "completed":
        async with worker(client, task_queue):
            await closed.result()
    else:
        await closed.terminate(reason="closed for a reuse test")
    closed_history = await history_events(pinned(client, closed))

    if not allowed:
        with pytest.raises(WorkflowAlreadyStartedError) as rejected:
            await signal_with_start(client, workflow_id, task_queue, "refused",
                                    id_reuse_policy=policy)
        assert rejected.value.run_id == closed.result_run_id
        assert (await client.get_workflow_handle(workflow_id).describe()).run_id == \
            closed.result_run_id
    else:
        new = await signal_with_start(client, workflow_id, task_queue, "second run",
                                      id_reuse_policy=policy)
        assert new.result_run_id != closed.result_run_id
        assert types_of(await history_events(new)) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        ]
        async with worker(client, task_queue):
            assert await new.result() == [["add", "second run"]]
    # The closed run is untouched either way.
    assert await history_events(pinned(client, closed)) == closed_history


async def test_signal_with_start_conflict_use_existing(client: Client, task_queue: str):
    workflow_id = unique_id("sws-conflict")
    running = await client.start_workflow(SignalWorkflow.run, 1, id=workflow_id,
                                          task_queue=task_queue)
    existing = await signal_with_start(
        client, workflow_id, task_queue, "to the existing run",
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    assert existing.result_run_id == running.result_run_id
    async with worker(client, task_queue):
        assert await running.result() == [["add", "to the existing run"]]


async def test_signal_with_start_conflict_terminate_existing(client: Client, task_queue: str):
    workflow_id = unique_id("sws-conflict")
    old = await client.start_workflow(SignalWorkflow.run, 1, id=workflow_id,
                                      task_queue=task_queue)
    new = await signal_with_start(
        client, workflow_id, task_queue, "to a new run",
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING)
    assert new.result_run_id != old.result_run_id

    old_run = pinned(client, old)
    assert (await old_run.describe()).status == WorkflowExecutionStatus.TERMINATED
    old_events = await history_events(old_run)
    assert types_of(old_events) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
    ]
    terminated = old_events[-1].workflow_execution_terminated_event_attributes
    assert terminated.reason == "TerminateIfRunning WorkflowIdReusePolicy"
    assert terminated.identity == "history-service"

    assert types_of(await history_events(new)) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    ]
    async with worker(client, task_queue):
        assert await new.result() == [["add", "to a new run"]]


async def test_signal_with_start_conflict_fail_is_not_supported(client: Client,
                                                                task_queue: str):
    """Temporal refuses WORKFLOW_ID_CONFLICT_POLICY_FAIL on signal-with-start outright (the
    unspecified policy is what signals a running workflow)."""
    workflow_id = unique_id("sws-conflict")
    with pytest.raises(RPCError) as refused:
        await signal_with_start(client, workflow_id, task_queue, "never",
                                id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported" in refused.value.message
    with pytest.raises(RPCError) as absent:
        await client.get_workflow_handle(workflow_id).describe()
    assert absent.value.status == RPCStatusCode.NOT_FOUND


# Bad input -----------------------------------------------------------------------------------


async def expect_rpc_error(call, code: RPCStatusCode, message: str | None = None) -> RPCError:
    with pytest.raises(RPCError) as caught:
        await call
    assert caught.value.status == code, (
        f"got {caught.value.status.name} ({caught.value.message!r}), expected {code.name}")
    if message is not None:
        assert message in caught.value.message
    return caught.value


def raw_signal(client: Client, workflow_id: str, **overrides: Any):
    fields: dict[str, Any] = dict(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name="add",
        identity="almanac-integration-tests",
        request_id=str(uuid.uuid4()),
    )
    fields.update(overrides)
    return client.workflow_service.signal_workflow_execution(
        SignalWorkflowExecutionRequest(**fields), timeout=RPC_TIMEOUT)


async def test_bad_signal_requests(client: Client, task_queue: str):
    handle = await client.start_workflow(SignalWorkflow.run, 1, id=unique_id("bad"),
                                         task_queue=task_queue)
    await expect_rpc_error(raw_signal(client, handle.id, signal_name=""),
                           RPCStatusCode.INVALID_ARGUMENT, "SignalName is not set")
    await expect_rpc_error(raw_signal(client, ""), RPCStatusCode.INVALID_ARGUMENT,
                           "WorkflowId is not set")
    await expect_rpc_error(
        raw_signal(client, handle.id, workflow_execution=WorkflowExecution(
            workflow_id=handle.id, run_id=str(uuid.uuid4()))),
        RPCStatusCode.NOT_FOUND)
    await expect_rpc_error(
        raw_signal(client, handle.id, workflow_execution=WorkflowExecution(
            workflow_id=handle.id, run_id="not-a-uuid")),
        RPCStatusCode.INVALID_ARGUMENT, "Invalid RunId")
    # Nothing of the above reached the run.
    assert types_of(await history_events(handle)) == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    ]
    await handle.terminate(reason="test cleanup")


async def test_signal_payload_over_2_mib_is_refused(client: Client, task_queue: str):
    handle = await client.start_workflow(SignalWorkflow.run, 1, id=unique_id("big"),
                                         task_queue=task_queue)

    def blob(size: int) -> Payloads:
        return Payloads(payloads=[Payload(metadata={"encoding": b"binary/plain"},
                                          data=b"x" * size)])

    await expect_rpc_error(
        raw_signal(client, handle.id, signal_name="blob", input=blob(2 * 1024 * 1024 + 1024)),
        RPCStatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit")
    # Just under the limit is fine.
    await raw_signal(client, handle.id, signal_name="blob", input=blob(2 * 1024 * 1024 - 1024))
    events = await history_events(handle)
    assert len(of_type(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)) == 1
    await handle.terminate(reason="test cleanup")


# Capabilities --------------------------------------------------------------------------------


async def test_system_info_advertises_signal_and_query_headers(client: Client):
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest(),
                                                         timeout=RPC_TIMEOUT)
    assert info.capabilities.signal_and_query_header
