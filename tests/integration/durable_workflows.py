"""Workflows and activities of test_durability.py, in a small module of their own: the
workflow sandbox re-imports a workflow's module for every run, and a hundred runs of a
module that pulls in the whole test harness cost the worker seconds of CPU."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def double_slowly(value: int) -> int:
    await asyncio.sleep(2)
    return value * 2


@activity.defn
async def double(value: int) -> int:
    return value * 2


@workflow.defn
class TimerWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        await asyncio.sleep(5)
        return value


@workflow.defn
class SlowActivityWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        return await workflow.execute_activity(double_slowly, value,
                                               start_to_close_timeout=timedelta(seconds=60))


@workflow.defn
class QuickActivityWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        return await workflow.execute_activity(double, value,
                                               start_to_close_timeout=timedelta(seconds=60))
