"""An accepted update is durable: kill -9 the daemon while a hundred workflows each hold one
that has not completed, restart it, and every update completes exactly once, every signal
is delivered exactly once. Needs the Almanac daemon (skipped with ALMANAC_TEST_ADDRESS)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage
from temporalio.worker import Worker

import message_workflows
from helpers import bounded, history_events, type_names, unique_id, wait_for_event
from message_workflows import UpdateWorkflow

RUNS = 100
E = EventType


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=message_workflows.WORKFLOWS,
                  activities=message_workflows.ACTIVITIES,
                  max_concurrent_workflow_tasks=200, max_concurrent_activities=200)


def needs_daemon(server) -> None:
    if server.store == "external":
        pytest.skip("needs the Almanac daemon")


async def crash_and_restart(server) -> None:
    server.kill9()
    await asyncio.get_running_loop().run_in_executor(None, server.restart)


def check_history(events, update: str) -> None:
    """Dense ids, one start, one completion; exactly one acceptance and one completion of
    `update`, one `release` and one `finish` signal, and the update's completion after the
    release."""
    names = type_names([e.event_type for e in events])
    assert [e.event_id for e in events] == list(range(1, len(events) + 1)), names
    assert names[0] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", names
    assert names[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED", names
    assert names.count("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED") == 1, names
    assert names.count("EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED") == 1, names
    accepted = [e for e in events if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    completed = [e for e in events
                 if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED]
    assert len(accepted) == 1 and len(completed) == 1, names
    assert accepted[0].workflow_execution_update_accepted_event_attributes \
        .protocol_instance_id == update
    done = completed[0].workflow_execution_update_completed_event_attributes
    assert done.meta.update_id == update
    assert done.accepted_event_id == accepted[0].event_id
    signals = [e.workflow_execution_signaled_event_attributes.signal_name for e in events
               if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    assert sorted(signals) == ["finish", "release"], names
    release = next(e for e in events if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                   and e.workflow_execution_signaled_event_attributes.signal_name == "release")
    assert accepted[0].event_id < release.event_id < completed[0].event_id, names


async def hold_updates(client: Client, task_queue: str) -> tuple[list[WorkflowHandle], list]:
    """RUNS waiting workflows, each with an accepted `wait_for_release` update."""
    handles = await bounded(client.start_workflow(UpdateWorkflow.run, id=unique_id("crash-upd"),
                                                  task_queue=task_queue) for _ in range(RUNS))
    for h in handles:
        await wait_for_event(h, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, within_s=60)
    updates = await bounded(
        h.start_update(UpdateWorkflow.wait_for_release, f"u{i}", id=f"crash-{i}-{uuid.uuid4()}",
                       wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        for i, h in enumerate(handles))
    return handles, updates


async def finish_and_check(client: Client, handles: list[WorkflowHandle], updates: list) -> None:
    results = await bounded(u.result() for u in updates)
    assert results == [f"u{i} released" for i in range(RUNS)]
    # A client that never saw the updates finds the same outcomes by id.
    again = await bounded(client.get_workflow_handle(h.id).get_update_handle(u.id).result()
                          for h, u in zip(handles, updates))
    assert again == results
    await bounded(h.signal(UpdateWorkflow.finish) for h in handles)
    finals = await bounded(h.result() for h in handles)
    assert finals == [[f"waiting u{i}", f"released u{i}"] for i in range(RUNS)]
    for h, u in zip(handles, updates):
        check_history(await history_events(h), u.id)


@pytest.mark.deadline(150)
async def test_kill9_while_100_updates_are_accepted(server, task_queue: str) -> None:
    needs_daemon(server)
    client = await Client.connect(server.address)
    async with worker(client, task_queue):
        handles, updates = await hold_updates(client, task_queue)
        await crash_and_restart(server)
        await bounded(h.signal(UpdateWorkflow.release) for h in handles)
        await finish_and_check(client, handles, updates)


@pytest.mark.deadline(150)
async def test_kill9_right_after_signals_to_100_accepted_updates(server, task_queue: str) -> None:
    """The releasing signals are acknowledged, then the daemon dies at once: many of them
    are still waiting for (or riding in) a workflow task when it does."""
    needs_daemon(server)
    client = await Client.connect(server.address)
    async with worker(client, task_queue):
        handles, updates = await hold_updates(client, task_queue)
        await bounded((h.signal(UpdateWorkflow.release) for h in handles), limit=RUNS)
        await crash_and_restart(server)
        await finish_and_check(client, handles, updates)
