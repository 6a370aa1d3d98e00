"""Workflows and activities shared by the crash tests and their worker process."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import crash_switches


@activity.defn
async def blocks_on_first_attempt(value: int) -> int:
    if activity.info().attempt == 1:
        print(f"activity started {activity.info().workflow_id}", flush=True)
        await asyncio.sleep(3600)
    return value * 10


@workflow.defn
class ActivityThenDone:
    @workflow.run
    async def run(self, value: int) -> int:
        return await workflow.execute_activity(
            blocks_on_first_attempt, value, start_to_close_timeout=timedelta(seconds=3),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


@activity.defn
async def local_blocks_on_first_attempt(value: int) -> int:
    # A local activity runs inside the workflow task: while it blocks, the task stays open.
    if activity.info().attempt == 1 and crash_switches.BLOCK_LOCAL_ACTIVITIES:
        print(f"local activity started {activity.info().workflow_id}", flush=True)
        await asyncio.sleep(3600)
    return value + 1


@workflow.defn
class LocalActivityThenDone:
    @workflow.run
    async def run(self, value: int) -> int:
        return await workflow.execute_local_activity(
            local_blocks_on_first_attempt, value, start_to_close_timeout=timedelta(seconds=60))


@workflow.defn
class TimerThenDone:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "after the timer"


@workflow.defn
class FailsWhileSwitchedOn:
    """Raises a plain exception (a workflow task failure, not a workflow failure) while the
    test keeps the switch on."""

    @workflow.run
    async def run(self) -> str:
        if crash_switches.FAIL_WORKFLOW_TASKS:
            raise RuntimeError("workflow code bug")
        return "recovered"


WORKFLOWS = [ActivityThenDone, TimerThenDone, FailsWhileSwitchedOn, LocalActivityThenDone]
ACTIVITIES = [blocks_on_first_attempt, local_blocks_on_first_attempt]
