"""Workflows of the lifecycle tests (continue-as-new), in a small module of their own: the
workflow sandbox re-imports a workflow's module for every run it starts."""

from __future__ import annotations

import asyncio

from temporalio import workflow


@workflow.defn
class CountingWorkflow:
    """Continues as new until `count` reaches `until`; returns the run ids it went through."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.run
    async def run(self, count: int, until: int, runs: list[str]) -> dict:
        runs = [*runs, workflow.info().run_id]
        if count < until:
            workflow.continue_as_new(args=[count + 1, until, runs])
        return {"count": count, "runs": runs,
                "memo": workflow.memo_value("owner", default=None)}


@workflow.defn
class SignaledContinueWorkflow:
    """Continues as new after each signal, carrying what it received."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.run
    async def run(self, carried: list[str]) -> list[str]:
        await workflow.wait_condition(lambda: bool(self.received))
        total = [*carried, *self.received]
        if "stop" in total:
            return total
        workflow.continue_as_new(args=[total])

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(value)


WORKFLOWS = [CountingWorkflow, SignaledContinueWorkflow]


@workflow.defn
class DelayedWorkflow:
    """Returns the signals it saw, once it has seen one."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: bool(self.received))
        return self.received

    @workflow.signal
    def note(self, value: str) -> None:
        self.received.append(value)


WORKFLOWS.append(DelayedWorkflow)


@workflow.defn
class NappingChild:
    """Sleeps `seconds` (a durable timer), then returns `value` doubled."""

    @workflow.run
    async def run(self, value: int, seconds: float) -> int:
        await workflow.sleep(seconds)
        return value * 2


@workflow.defn
class TwoChildrenParent:
    """Starts two children at once and returns their results, in order."""

    @workflow.run
    async def run(self, base: int) -> list[int]:
        me = workflow.info().workflow_id
        first = workflow.execute_child_workflow(NappingChild.run, args=[base, 1.0],
                                                id=f"{me}-a")
        second = workflow.execute_child_workflow(NappingChild.run, args=[base + 1, 2.0],
                                                 id=f"{me}-b")
        return list(await asyncio.gather(first, second))


@workflow.defn
class CountingCron:
    """A cron workflow's run: one more than the last run's result (0 before any)."""

    @workflow.run
    async def run(self) -> int:
        last = workflow.get_last_completion_result(int) if workflow.has_last_completion_result() else None
        return (last or 0) + 1


WORKFLOWS += [NappingChild, TwoChildrenParent, CountingCron]
