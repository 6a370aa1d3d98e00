"""Workflows and activities of test_history_core.py, in a module of their own so that the
workflow sandbox can import it (the test module imports the process harness)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@workflow.defn
class SleepThenReturn:
    @workflow.run
    async def run(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds


@activity.defn
async def add_one(value: int) -> int:
    return value + 1


@activity.defn
async def fail_first_attempt(value: int) -> int:
    if activity.info().attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return value * 10


@workflow.defn
class ActivityTimerRetry:
    """An activity, a timer, and an activity that succeeds on its second attempt."""

    @workflow.run
    async def run(self, value: int) -> int:
        a = await workflow.execute_activity(add_one, value,
                                            start_to_close_timeout=timedelta(seconds=30))
        await asyncio.sleep(1)
        b = await workflow.execute_activity(
            fail_first_attempt, value, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500)))
        return a + b
