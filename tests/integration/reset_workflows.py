"""Workflows and the activity of test_reset.py, in a small module of their own: the workflow
sandbox re-imports a workflow's module for every run it starts.

A reset makes a new run replay the base run's history up to the reset point and then execute
again, so these workflows make re-execution visible: the activity counts its calls per
workflow id (a reset keeps the id), and the collectors return every message they received, in
order, as "signal:<value>" or "update:<value>".
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

# Calls of count_call so far, by workflow id. The activity runs in the worker's process,
# outside the sandbox, so the test sees this dict.
calls: dict[str, int] = {}


@activity.defn
async def count_call(key: str, delays_s: list[float]) -> int:
    """How many times it has been called for `key`, this call included; call n takes
    `delays_s[n - 1]` seconds (no time at all past the end of the list)."""
    calls[key] = calls.get(key, 0) + 1
    count = calls[key]
    if count <= len(delays_s):
        await asyncio.sleep(delays_s[count - 1])
    return count


@workflow.defn
class CountingActivityWorkflow:
    """Runs count_call once and returns its count (2 once a reset has re-executed it), with
    the `note` signals received by then."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    @workflow.run
    async def run(self, delays_s: list[float]) -> dict:
        count = await workflow.execute_activity(
            count_call, args=[workflow.info().workflow_id, delays_s],
            start_to_close_timeout=timedelta(seconds=20))
        return {"call": count, "notes": self.notes}

    @workflow.signal
    def note(self, value: str) -> None:
        self.notes.append(value)


@workflow.defn
class CollectorWorkflow:
    """Collects `add` signals and `append` updates until the `finish` signal; returns them."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.finished = False

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(
            lambda: self.finished and workflow.all_handlers_finished())
        return self.received

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(f"signal:{value}")

    @workflow.update
    def append(self, value: str) -> list[str]:
        self.received.append(f"update:{value}")
        return list(self.received)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@workflow.defn
class ContinueTwiceWorkflow:
    """Continues as new until it is in its third run; returns the run ids of the chain."""

    @workflow.run
    async def run(self, runs: list[str]) -> list[str]:
        runs = [*runs, workflow.info().run_id]
        if len(runs) < 3:
            workflow.continue_as_new(args=[runs])
        return runs


@workflow.defn
class WaitingChild:
    """Returns `value` after the `finish` signal."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.run
    async def run(self, value: str) -> str:
        await workflow.wait_condition(lambda: self.finished)
        return value

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@workflow.defn
class ParentOfWaitingChild:
    """Starts a WaitingChild with id `child_id` and returns its result."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        return await workflow.execute_child_workflow(WaitingChild.run, "from the child",
                                                     id=child_id)


WORKFLOWS = [CountingActivityWorkflow, CollectorWorkflow, ContinueTwiceWorkflow, WaitingChild,
             ParentOfWaitingChild]
ACTIVITIES = [count_call]
