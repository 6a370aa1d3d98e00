"""Limits from the workflow-concepts seed, with the errors Temporal gives: history length
and size, pending activities, and payload size. A daemon configured with small limits makes
the history and pending limits quick to reach; the payload limit is the default 2 MB."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from datetime import timedelta
from typing import Iterator

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import TerminatedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from harness import almanac_binary, free_port
    from helpers import history_events, unique_id, wait_for_event
    from test_process import wait_serving


@activity.defn
async def noop(i: int) -> int:
    return i


@workflow.defn
class ManyTimers:
    @workflow.run
    async def run(self, count: int) -> int:
        for _ in range(count):
            await asyncio.sleep(0.01)
        return count


@workflow.defn
class HeedsTheSuggestion:
    """Sleeps in small steps until the server suggests continuing as new, then does, once;
    returns the history length at which each run was told."""

    @workflow.run
    async def run(self, told_at: list[int]) -> list[int]:
        while not workflow.info().is_continue_as_new_suggested():
            await asyncio.sleep(0.01)
        told_at = [*told_at, workflow.info().get_current_history_length()]
        if len(told_at) < 2:
            workflow.continue_as_new(told_at)
        return told_at


@workflow.defn
class ParallelActivities:
    @workflow.run
    async def run(self, count: int) -> list[int]:
        return list(await asyncio.gather(*(
            workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=10))
            for i in range(count))))


@workflow.defn
class BigResult:
    @workflow.run
    async def run(self, size: int) -> str:
        return "x" * size


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def limited_address(request, tmp_path_factory) -> Iterator[str]:
    """A daemon with small limits, on each store."""
    work = tmp_path_factory.mktemp("limited")
    config = work / "limits.yaml"
    port = free_port()
    text = (
        "limits:\n"
        "  history_count_warn: 60\n"
        "  history_count_error: 120\n"
        "  max_pending_activities: 5\n"
        f"frontend: {{bind_ip: 127.0.0.1, grpc_port: {port}}}\n"
    )
    binary = str(almanac_binary())
    if request.param == "sqlite":
        config.write_text(text)
        cmd = [binary, "start-dev", "--port", str(port), "--config", str(config),
               "--db-filename", str(work / "limited.db")]
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        text += (
            "persistence:\n  driver: postgres\n"
            f"  postgres: {{host: {cluster.host}, port: {cluster.port}, user: {cluster.ROLE}, "
            f"database: {cluster.create_database()}}}\n"
        )
        config.write_text(text)
        subprocess.run([binary, "schema", "setup", "--config", str(config)], check=True,
                       capture_output=True, timeout=60)
        cmd = [binary, "server", "--config", str(config)]
    log = (work / "almanac.log").open("wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        wait_serving(f"127.0.0.1:{port}", process, limit_s=10)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        log.close()


async def test_history_count_limit_terminates_the_run(limited_address, task_queue):
    client = await Client.connect(limited_address)
    async with Worker(client, task_queue=task_queue, workflows=[ManyTimers]):
        handle = await client.start_workflow(ManyTimers.run, 100, id=unique_id("long"),
                                             task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert isinstance(err.value.cause, TerminatedError)
    events = await history_events(handle)
    last = events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    assert last.workflow_execution_terminated_event_attributes.reason == \
        "Workflow history count exceeds limit."
    assert 120 < len(events) < 140
    # Past the warning limit, workers were told to continue as new.
    suggested = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
                 and e.workflow_task_started_event_attributes.suggest_continue_as_new]
    assert suggested and suggested[0].event_id > 60


async def test_a_workflow_continues_as_new_when_the_server_suggests_it(limited_address,
                                                                      task_queue):
    client = await Client.connect(limited_address)
    async with Worker(client, task_queue=task_queue, workflows=[HeedsTheSuggestion]):
        handle = await client.start_workflow(HeedsTheSuggestion.run, [],
                                             id=unique_id("suggested"), task_queue=task_queue)
        told_at = await handle.result()
    # Each run was told past the warning limit (60 events here), long before the error limit.
    assert len(told_at) == 2 and all(60 < n < 100 for n in told_at), told_at
    first = await history_events(client.get_workflow_handle(handle.id,
                                                            run_id=handle.first_execution_run_id))
    assert first[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    last = await history_events(client.get_workflow_handle(handle.id))
    assert last[0].workflow_execution_started_event_attributes.continued_execution_run_id == \
        handle.first_execution_run_id
    assert last[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


async def test_pending_activity_limit_fails_the_workflow_task(limited_address, task_queue):
    client = await Client.connect(limited_address)
    async with Worker(client, task_queue=task_queue, workflows=[ParallelActivities],
                      activities=[noop]):
        handle = await client.start_workflow(ParallelActivities.run, 6, id=unique_id("pending"),
                                             task_queue=task_queue)
        events = await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        failed = next(e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        assert failed.workflow_task_failed_event_attributes.cause == \
            WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED
        assert not any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)
        # Within the limit, the same workflow runs.
        ok = await client.execute_workflow(ParallelActivities.run, 5, id=unique_id("pending-ok"),
                                           task_queue=task_queue)
        assert ok == [0, 1, 2, 3, 4]
        await handle.terminate("test over")


async def test_payloads_over_2_mb_are_refused(client, task_queue):
    big = "y" * (2 * 1024 * 1024 + 100)
    with pytest.raises(RPCError) as err:
        await client.start_workflow(BigResult.run, big, id=unique_id("big-input"),
                                    task_queue=task_queue)
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.value.message == "Blob data size exceeds limit."  # Temporal's words
    async with Worker(client, task_queue=task_queue, workflows=[BigResult]):
        handle = await client.start_workflow(BigResult.run, 2 * 1024 * 1024 + 100,
                                             id=unique_id("big-result"), task_queue=task_queue)
        events = await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        failed = next(e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        attrs = failed.workflow_task_failed_event_attributes
        assert attrs.cause == \
            WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES
        assert "exceeds size limit" in attrs.failure.message
        await handle.terminate("test over")
