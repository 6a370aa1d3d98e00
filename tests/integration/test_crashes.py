"""Workers die, workflow code fails, and servers crash; every workflow still completes once,
with a well-formed history."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

import crash_switches
import crash_workflows
from crash_workflows import (ActivityThenDone, FailsWhileSwitchedOn, LocalActivityThenDone,
                             TimerThenDone)
from helpers import history_events, type_names, unique_id, wait_for_event

HERE = Path(__file__).resolve().parent


def local_worker(client: Client, task_queue: str, **options) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=crash_workflows.WORKFLOWS,
                  activities=crash_workflows.ACTIVITIES, **options)


class WorkerProcess:
    """A worker in its own process, to be killed with SIGKILL."""

    def __init__(self, address: str, task_queue: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "crash_worker.py"), address, task_queue],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=HERE, text=True,
        )
        self.lines: list[str] = []

    async def wait_for_line(self, prefix: str, count: int = 1, within_s: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while sum(line.startswith(prefix) for line in self.lines) < count:
            if loop.time() > deadline:
                raise AssertionError(f"worker never printed {prefix!r}: {self.lines[-20:]}")
            line = await asyncio.wait_for(loop.run_in_executor(None, self.process.stdout.readline),
                                          timeout=max(0.1, deadline - loop.time()))
            if not line and self.process.poll() is not None:
                raise AssertionError(f"worker exited early: {self.lines[-20:]}")
            self.lines.append(line)

    def kill9(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def assert_well_formed(events) -> None:
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(ids) + 1)), ids
    types = [e.event_type for e in events]
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    closes = [t for t in types if t in (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
                                        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)]
    assert closes == [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED], type_names(types)


@pytest.mark.deadline(120)
async def test_worker_killed_mid_activity_another_worker_finishes(server, client, task_queue):
    runs = 5
    doomed = WorkerProcess(server.address, task_queue)
    try:
        await doomed.wait_for_line("worker ready")
        handles = [await client.start_workflow(ActivityThenDone.run, i, id=unique_id("wkill"),
                                               task_queue=task_queue) for i in range(runs)]
        await doomed.wait_for_line("activity started", count=runs)
    finally:
        doomed.kill9()
    # The activities' start-to-close timeouts expire; their retries reach the new worker.
    async with local_worker(client, task_queue):
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [i * 10 for i in range(runs)]
    for h in handles:
        events = await history_events(h)
        assert_well_formed(events)
        started = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
        assert len(started) == 1 and started[0].activity_task_started_event_attributes.attempt == 2


@pytest.mark.deadline(120)
async def test_worker_killed_while_waiting_sticky_tasks_fall_back(server, client, task_queue):
    doomed = WorkerProcess(server.address, task_queue)
    try:
        await doomed.wait_for_line("worker ready")
        handle = await client.start_workflow(TimerThenDone.run, 1.0, id=unique_id("sticky"),
                                             task_queue=task_queue)
        events = await wait_for_event(handle, EventType.EVENT_TYPE_TIMER_STARTED)
        completed = next(e for e in events
                         if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        assert completed.workflow_task_completed_event_attributes.identity
    finally:
        doomed.kill9()
    # The timer fires while the sticky worker is dead: its task falls back to the normal
    # queue, where a fresh worker (with no cached state) replays the full history.
    async with local_worker(client, task_queue):
        assert await handle.result() == "after the timer"
    events = await history_events(handle)
    assert_well_formed(events)
    scheduled = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    assert scheduled[-1].workflow_task_scheduled_event_attributes.task_queue.name == task_queue


@pytest.mark.deadline(120)
async def test_worker_killed_mid_workflow_task_another_worker_finishes(server, client, task_queue):
    doomed = WorkerProcess(server.address, task_queue)
    try:
        await doomed.wait_for_line("worker ready")
        handle = await client.start_workflow(LocalActivityThenDone.run, 41, id=unique_id("wft-kill"),
                                             task_queue=task_queue,
                                             task_timeout=timedelta(seconds=5))
        # The worker holds the workflow task while its local activity runs: kill it then.
        await doomed.wait_for_line("local activity started")
    finally:
        doomed.kill9()
    async with local_worker(client, task_queue):
        assert await handle.result() == 42
    events = await history_events(handle)
    assert_well_formed(events)
    names = type_names([e.event_type for e in events])
    assert names[:4] == ["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
                         "EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT"]
    assert names.count("EVENT_TYPE_MARKER_RECORDED") == 1  # the local activity's result, once


@pytest.mark.deadline(60)
async def test_worker_dies_holding_a_workflow_task_it_is_redelivered(server, client, task_queue):
    handle = await client.start_workflow(TimerThenDone.run, 0.1, id=unique_id("wft-timeout"),
                                         task_queue=task_queue,
                                         task_timeout=timedelta(seconds=2))
    # A worker takes the workflow task and dies without answering.
    taken = await client.workflow_service.poll_workflow_task_queue(PollWorkflowTaskQueueRequest(
        namespace="default", identity="doomed-worker",
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL)))
    assert taken.task_token
    async with local_worker(client, task_queue):
        assert await handle.result() == "after the timer"
    events = await history_events(handle)
    assert_well_formed(events)
    names = type_names([e.event_type for e in events])
    assert names[:4] == ["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
                         "EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT"]
    timed_out = events[3].workflow_task_timed_out_event_attributes
    assert timed_out.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE


@pytest.mark.deadline(90)
async def test_a_failing_workflow_task_is_recorded_once_then_retried(server, client, task_queue):
    crash_switches.FAIL_WORKFLOW_TASKS = True
    try:
        async with local_worker(client, task_queue, max_cached_workflows=0):
            handle = await client.start_workflow(FailsWhileSwitchedOn.run,
                                                 id=unique_id("wft-fail"), task_queue=task_queue,
                                                 task_timeout=timedelta(seconds=1))
            await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
            await asyncio.sleep(3)  # several more failed attempts
            crash_switches.FAIL_WORKFLOW_TASKS = False
            assert await handle.result() == "recovered"
    finally:
        crash_switches.FAIL_WORKFLOW_TASKS = False
    events = await history_events(handle)
    assert_well_formed(events)
    names = type_names([e.event_type for e in events])
    assert names.count("EVENT_TYPE_WORKFLOW_TASK_FAILED") == 1, names
    last_scheduled = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED][-1]
    assert last_scheduled.workflow_task_scheduled_event_attributes.attempt > 1
