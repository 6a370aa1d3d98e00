"""Workflows the integration tests run. Each returns something the test can check."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import append, charge_card, greet, square

ACTIVITY_TIMEOUT = timedelta(seconds=30)


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return value


@workflow.defn
class GreetWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=ACTIVITY_TIMEOUT
        )


@workflow.defn
class SequentialActivitiesWorkflow:
    """Runs `count` activities one after another; each extends the previous one's result."""

    @workflow.run
    async def run(self, count: int) -> list[int]:
        sequence: list[int] = []
        for i in range(count):
            sequence = await workflow.execute_activity(
                append, args=[sequence, i], start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        return sequence


@workflow.defn
class ParallelActivitiesWorkflow:
    @workflow.run
    async def run(self, count: int) -> list[int]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        square, i, start_to_close_timeout=ACTIVITY_TIMEOUT
                    )
                    for i in range(count)
                )
            )
        )


@workflow.defn
class SleepWorkflow:
    """Sleeps on a durable timer, then returns how long it slept."""

    @workflow.run
    async def run(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds


@workflow.defn
class LocalActivityWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_local_activity(
            greet, name, start_to_close_timeout=ACTIVITY_TIMEOUT
        )


@workflow.defn
class PatchedWorkflow:
    @workflow.run
    async def run(self) -> str:
        # A short timer first, so that without a cache the patch check is replayed.
        await asyncio.sleep(0.1)
        return "patched" if workflow.patched("p1") else "original"


@workflow.defn
class DeterministicValuesWorkflow:
    """Returns two workflow UUIDs taken on either side of a timer, and workflow.now()."""

    @workflow.run
    async def run(self) -> list[str]:
        before = workflow.uuid4()
        await asyncio.sleep(0.1)
        after = workflow.uuid4()
        return [str(before), str(after), workflow.now().isoformat()]


@workflow.defn
class FailingWorkflow:
    @workflow.run
    async def run(self, message: str) -> None:
        raise ApplicationError(message, type="WorkflowBroke")


@workflow.defn
class ActivityFailureWorkflow:
    """Calls an activity that fails for good and reports what the failure looked like."""

    @workflow.run
    async def run(self, order_id: str) -> dict[str, str]:
        try:
            await workflow.execute_activity(
                charge_card,
                order_id,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        except ActivityError as err:
            cause = err.cause
            if not isinstance(cause, ApplicationError):
                raise
            return {
                "message": cause.message,
                "type": cause.type or "",
                "non_retryable": str(cause.non_retryable),
                "retry_state": err.retry_state.name if err.retry_state else "",
            }
        raise ApplicationError("charge_card unexpectedly succeeded")


@workflow.defn
class RemoteActivityWorkflow:
    """Waits on the `record_call` activity on another task queue."""

    @workflow.run
    async def run(self, activity_queue: str) -> str:
        return await workflow.execute_activity(
            "record_call",
            "called",
            task_queue=activity_queue,
            schedule_to_close_timeout=timedelta(minutes=10),
            result_type=str,
        )


ALL_WORKFLOWS = [
    EchoWorkflow,
    GreetWorkflow,
    SequentialActivitiesWorkflow,
    ParallelActivitiesWorkflow,
    SleepWorkflow,
    LocalActivityWorkflow,
    PatchedWorkflow,
    DeterministicValuesWorkflow,
    FailingWorkflow,
    ActivityFailureWorkflow,
    RemoteActivityWorkflow,
]
