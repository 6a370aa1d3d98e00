"""Children and cron survive kill -9: a hundred parents each waiting on two children and a
hundred cron workflows run while the daemon is killed again and again. Afterwards every
child's result has reached its parent exactly once, every history is dense, and each cron
chain went on from run to run with no run doubled or lost: each run's result is one more
than its predecessor's, and each run was scheduled at the cron's first time not before its
predecessor closed (the times that passed while the daemon was down are skipped, as Temporal
does). Needs the Almanac daemon (skipped with ALMANAC_TEST_ADDRESS)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

import lifecycle_workflows
from helpers import bounded, decode, history_events, type_names, unique_id
from lifecycle_workflows import CountingCron, TwoChildrenParent

PARENTS = 100
CRONS = 100
CRON_PERIOD_S = 3
KILLS = 3
E = EventType


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=lifecycle_workflows.WORKFLOWS,
                  max_concurrent_workflow_tasks=200)


def assert_dense(events) -> None:
    assert [e.event_id for e in events] == list(range(1, len(events) + 1)), \
        type_names([e.event_type for e in events])


def count(events, event_type) -> int:
    return sum(1 for e in events if e.event_type == event_type)


async def check_parent(client: Client, handle: WorkflowHandle, base: int) -> None:
    assert await handle.result() == [2 * base, 2 * (base + 1)]
    events = await history_events(handle)
    assert_dense(events)
    names = type_names([e.event_type for e in events])
    for t in (E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
              E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
              E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED):
        assert count(events, t) == 2, names
    assert count(events, E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1, names
    for suffix in ("a", "b"):
        child = client.get_workflow_handle(f"{handle.id}-{suffix}")
        desc = await child.describe()
        assert desc.status == WorkflowExecutionStatus.COMPLETED
        # One run: the child was started once, however often its start task ran.
        assert desc.raw_description.workflow_execution_info.first_run_id == desc.run_id
        assert desc.raw_description.workflow_execution_info.parent_execution.workflow_id == handle.id
        assert_dense(await history_events(child))


async def check_cron_chain(client: Client, workflow_id: str, first_run_id: str) -> int:
    """Follows the chain from its first run; returns how many runs completed."""
    run_id = first_run_id
    previous_close = None
    previous_result = 0
    completed = 0
    while run_id:
        events = await history_events(client.get_workflow_handle(workflow_id, run_id=run_id))
        assert_dense(events)
        started = events[0].workflow_execution_started_event_attributes
        execution_time = events[0].event_time.ToDatetime() + \
            started.first_workflow_task_backoff.ToTimedelta()
        if previous_close is not None:
            # Scheduled at the cron's first time not before its predecessor closed, rounded
            # up to a whole second.
            gap = (execution_time - previous_close).total_seconds()
            assert -0.01 <= gap <= CRON_PERIOD_S + 1, (workflow_id, run_id, gap)
            assert decode(client, started.last_completion_result) == [previous_result]
        last = events[-1]
        if last.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            break
        assert last.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, \
            type_names([e.event_type for e in events])
        attrs = last.workflow_execution_completed_event_attributes
        result = decode(client, attrs.result)[0]
        assert result == previous_result + 1, (workflow_id, run_id)  # no run doubled or lost
        previous_result = result
        previous_close = last.event_time.ToDatetime()
        completed += 1
        run_id = attrs.new_execution_run_id
    return completed


@pytest.mark.deadline(240)
async def test_kill9_repeatedly_while_children_and_crons_run(server, task_queue: str) -> None:
    if server.store == "external":
        pytest.skip("needs the Almanac daemon")
    client = await Client.connect(server.address)
    async with worker(client, task_queue):
        crons = await bounded(client.start_workflow(
            CountingCron.run, id=unique_id("crash-cron"), task_queue=task_queue,
            cron_schedule=f"@every {CRON_PERIOD_S}s") for _ in range(CRONS))
        parents = await bounded(client.start_workflow(
            TwoChildrenParent.run, 10 * i, id=unique_id("crash-parent"), task_queue=task_queue)
            for i in range(PARENTS))
        for _ in range(KILLS):
            await asyncio.sleep(1.5)
            server.kill9()
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
        await bounded(check_parent(client, h, 10 * i) for i, h in enumerate(parents))
        # Let each cron go on past the crashes, then end it.
        await asyncio.sleep(2 * CRON_PERIOD_S)
        await bounded(client.get_workflow_handle(h.id).terminate("enough") for h in crons)
        runs = await bounded(check_cron_chain(client, h.id, h.first_execution_run_id)
                             for h in crons)
        # Every chain went on after the crashes.
        assert min(runs) >= 2, runs
