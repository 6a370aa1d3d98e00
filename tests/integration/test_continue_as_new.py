"""Continue-as-new: a run closes as ContinuedAsNew and starts its successor in the same chain,
with fresh history, the chain's ids, new input, and memo carried over; `result()` follows the
chain, and a handle pinned to the old run reports the continuation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType
from temporalio.client import Client, WorkflowContinuedAsNewError, WorkflowExecutionStatus
from temporalio.worker import Worker

import lifecycle_workflows
from helpers import history_events, type_names, unique_id
from lifecycle_workflows import CountingWorkflow, SignaledContinueWorkflow


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=lifecycle_workflows.WORKFLOWS,
                  **options)


async def test_continue_as_new_chain(client: Client, task_queue: str, worker_options: dict):
    workflow_id = unique_id("can")
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            CountingWorkflow.run, args=[0, 3, []], id=workflow_id, task_queue=task_queue,
            memo={"owner": "tests"})
        result = await handle.result()
    assert result["count"] == 3
    assert result["memo"] == "tests"  # carried over to every successor
    runs = result["runs"]
    assert len(runs) == 4 and len(set(runs)) == 4
    assert runs[0] == handle.first_execution_run_id == handle.result_run_id

    for i, run_id in enumerate(runs):
        events = await history_events(client.get_workflow_handle(workflow_id, run_id=run_id))
        types = type_names([e.event_type for e in events])
        assert [e.event_id for e in events] == list(range(1, len(events) + 1)), types
        started = events[0].workflow_execution_started_event_attributes
        assert started.first_execution_run_id == runs[0]
        if i == 0:
            assert not started.continued_execution_run_id
        else:
            assert started.continued_execution_run_id == runs[i - 1]
            assert started.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
            assert started.memo.fields["owner"].data  # the memo came along
        if i < len(runs) - 1:
            assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW", types
            cont = events[-1].workflow_execution_continued_as_new_event_attributes
            assert cont.new_execution_run_id == runs[i + 1]
            assert cont.workflow_type.name == "CountingWorkflow"
            assert cont.task_queue.name == task_queue
            assert cont.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
            desc = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
            assert desc.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        else:
            assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED", types

    # The first run, not followed, reports where it went.
    first = client.get_workflow_handle(workflow_id, run_id=runs[0])
    with pytest.raises(WorkflowContinuedAsNewError) as err:
        await first.result(follow_runs=False)
    assert err.value.new_execution_run_id == runs[1]
    # The workflow id's current run is the last one.
    assert (await client.get_workflow_handle(workflow_id).describe()).run_id == runs[-1]


async def test_signals_reach_each_run_of_a_chain(client: Client, task_queue: str,
                                                 worker_options: dict):
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(
            SignaledContinueWorkflow.run, args=[[]], id=unique_id("can-sig"),
            task_queue=task_queue)
        latest = client.get_workflow_handle(handle.id)
        for value in ["a", "b", "stop"]:
            before = (await latest.describe()).run_id
            # Addressed by workflow id only: each signal goes to the run current then.
            await latest.signal(SignaledContinueWorkflow.add, value)
            if value != "stop":
                while (await latest.describe()).run_id == before:
                    await asyncio.sleep(0.05)
        assert await handle.result() == ["a", "b", "stop"]
    events = await history_events(client.get_workflow_handle(handle.id))
    assert events[0].workflow_execution_started_event_attributes.input.payloads
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED == events[-1].event_type
