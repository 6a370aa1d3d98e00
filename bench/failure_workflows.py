"""The workflows and activities that bench/failure_costs.py runs.

They live in their own module (not in failure_costs.py) so that the SDK's workflow sandbox
can import them by a plain module name. The activities run outside the sandbox, in the
driver's process (the worker is in-process), so `HELD_TOKENS` below is the very dict the
driver reads.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

# workflow id -> task token of its held (asynchronously completed) activity.
HELD_TOKENS: dict[str, bytes] = {}

# Every timer a workflow arms fires (as a no-op, then its task row is deleted) once its
# timeout passes, even after the workflow finished. The driver waits that long after each
# measured batch, so that this deferred work is counted with the batch that caused it; short
# timeouts keep the wait short. The held activity's timeout is long on purpose: it never
# fires during a run.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)  # passed to start_workflow by the driver
STICKY_TIMEOUT = timedelta(seconds=5)  # the worker's sticky schedule-to-start (SDK: 10 s)
FLAKY_TIMEOUT = timedelta(seconds=5)
HOLD_TIMEOUT = timedelta(minutes=10)
# The smallest backoff the retry policy can express without falling back to defaults
# (a zero initial interval means "1 s"): every retry waits about 1 ms.
TINY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=1),
    backoff_coefficient=1.0,
    maximum_interval=timedelta(milliseconds=1),
    maximum_attempts=0,  # unlimited; the activity itself decides when to succeed
)


@activity.defn
async def hold_activity() -> str:
    """Hands its task token to the driver and leaves the activity open (completed later)."""
    info = activity.info()
    HELD_TOKENS[info.workflow_id] = info.task_token
    activity.raise_complete_async()


@activity.defn
async def flaky_activity(failures: int) -> int:
    """Fails its first `failures` attempts, then returns the attempt number that succeeded."""
    attempt = activity.info().attempt
    if attempt <= failures:
        # BENIGN keeps the SDK from logging a warning and a traceback for every attempt.
        raise ApplicationError(
            f"planned failure {attempt} of {failures}",
            category=ApplicationErrorCategory.BENIGN,
        )
    return attempt


@workflow.defn
class HeldActivityWorkflow:
    """One activity that stays open until the driver completes it by task token."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            hold_activity, start_to_close_timeout=HOLD_TIMEOUT
        )


@workflow.defn
class FlakyActivityWorkflow:
    """One activity that fails `failures` times and is retried with a ~1 ms backoff."""

    @workflow.run
    async def run(self, failures: int) -> int:
        return await workflow.execute_activity(
            flaky_activity,
            failures,
            start_to_close_timeout=FLAKY_TIMEOUT,
            retry_policy=TINY_RETRY,
        )
