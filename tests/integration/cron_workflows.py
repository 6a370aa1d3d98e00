"""Workflows of the cron tests, in a small module of their own: the workflow sandbox
re-imports a workflow's module for every run it starts."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError


def _last_failure() -> list[str] | None:
    """The previous run's failure as [exception class, message, application error type]."""
    failure = workflow.get_last_failure()
    if failure is None:
        return None
    return [type(failure).__name__, getattr(failure, "message", str(failure)),
            getattr(failure, "type", None)]


@workflow.defn
class CronCounterWorkflow:
    """Returns the previous run's count plus one, and what it was handed by the previous run."""

    @workflow.run
    async def run(self) -> dict:
        last = workflow.get_last_completion_result()
        count = (last["count"] if last else 0) + 1
        return {"count": count, "had_last_result": workflow.has_last_completion_result(),
                "last_failure": _last_failure(), "run_id": workflow.info().run_id}


@workflow.defn
class CronFlakyWorkflow:
    """Counts like CronCounterWorkflow, but fails (once) the run that finds the previous
    count at `fail_at` and no previous failure."""

    @workflow.run
    async def run(self, fail_at: int) -> dict:
        last = workflow.get_last_completion_result()
        previous = last["count"] if last else 0
        failure = _last_failure()
        if previous == fail_at and failure is None:
            raise ApplicationError(f"failing after {previous}", type="CronRunFailed")
        return {"count": previous + 1, "last_failure": failure}


@workflow.defn
class CronRetriedWorkflow:
    """Counts like CronCounterWorkflow, but the first attempt of the run that would count to
    `fail_at` fails; its retry succeeds."""

    @workflow.run
    async def run(self, fail_at: int) -> dict:
        last = workflow.get_last_completion_result()
        count = (last["count"] if last else 0) + 1
        attempt = workflow.info().attempt
        if count == fail_at and attempt == 1:
            raise ApplicationError(f"attempt {attempt} failed", type="CronRunFailed")
        return {"count": count, "attempt": attempt, "last_failure": _last_failure()}


@workflow.defn
class CronAlwaysFailsWorkflow:
    """Fails every run, naming its attempt."""

    @workflow.run
    async def run(self) -> None:
        raise ApplicationError(f"attempt {workflow.info().attempt} failed", type="CronRunFailed")


@workflow.defn
class CronWaitingWorkflow:
    """Records signals and waits until it is cancelled (or forever)."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def note(self, value: str) -> None:
        self.received.append(value)


WORKFLOWS = [CronCounterWorkflow, CronFlakyWorkflow, CronRetriedWorkflow,
             CronAlwaysFailsWorkflow, CronWaitingWorkflow]
