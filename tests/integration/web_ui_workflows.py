"""Workflows and activities that test_web_ui.py shows in Temporal's Web UI, in a small module of
their own: the workflow sandbox re-imports a workflow's module for every run it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RawValue


@activity.defn
async def ui_long_task(label: str) -> str:
    """Heartbeats its progress every half second until it is cancelled (or its workflow
    ends): the UI shows it as a pending activity with heartbeat details."""
    step = 0
    while True:
        step += 1
        activity.heartbeat({"label": label, "step": step})
        await asyncio.sleep(0.5)


@workflow.defn
class UiActivityWorkflow:
    """Waits on `ui_long_task`, which never finishes by itself."""

    @workflow.run
    async def run(self, label: str) -> str:
        return await workflow.execute_activity(
            ui_long_task,
            label,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=20),
        )


@workflow.defn
class UiSignalWorkflow:
    """Records every signal as [name, value]; returns them once `expected` arrived. Cancelled,
    it ends as canceled."""

    def __init__(self) -> None:
        self.received: list[list[str]] = []

    @workflow.run
    async def run(self, expected: int) -> list[list[str]]:
        await workflow.wait_condition(lambda: len(self.received) >= expected)
        return self.received

    @workflow.signal(dynamic=True)
    def anything(self, name: str, args: Sequence[RawValue]) -> None:
        values = [str(workflow.payload_converter().from_payload(a.payload)) for a in args]
        self.received.append([name, *values])

    @workflow.query
    def seen(self) -> list[list[str]]:
        return self.received


WORKFLOWS = [UiActivityWorkflow, UiSignalWorkflow]
ACTIVITIES = [ui_long_task]
