"""The workflow and activity that bench/load.py runs.

They live in their own module (not in load.py) so that the SDK's workflow sandbox and a
spawned worker process can both import them by a plain module name.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

TASK_TIMEOUT = timedelta(seconds=60)


def expected_result(n: int) -> str:
    """What LoadWorkflow(n) must return; the driver checks every run against it."""
    return f"item-{n}:{n * n + 7}"


@activity.defn
async def load_activity(n: int) -> str:
    return f"item-{n}:{n * n + 7}"


@workflow.defn
class LoadWorkflow:
    """Per run the server hands out two workflow tasks and one activity task (11 events)."""

    @workflow.run
    async def run(self, n: int) -> str:
        return await workflow.execute_activity(
            load_activity, n, start_to_close_timeout=TASK_TIMEOUT
        )
