"""Workflows of test_children.py, in a small module of their own: the workflow sandbox
re-imports a workflow's module for every run it starts.

The parents return what they saw of their children (results, or the errors the SDK raised,
flattened into lists of names and texts), so that the tests can compare it exactly.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutError as TemporalTimeoutError,
    WorkflowAlreadyStartedError,
)

# Children -----------------------------------------------------------------------------------


def _whoami(value: Any, notes: list[str]) -> dict:
    info = workflow.info()
    return {
        "value": value,
        "notes": notes,
        "workflow_id": info.workflow_id,
        "run_id": info.run_id,
        "task_queue": info.task_queue,
        "attempt": info.attempt,
        "parent": [info.parent.namespace, info.parent.workflow_id, info.parent.run_id]
        if info.parent else None,
        "root": [info.root.workflow_id, info.root.run_id] if info.root else None,
    }


@workflow.defn
class ChildWorkflow:
    """Returns at once (`wait` false) or after the `finish` signal, with what it knows of
    itself and its parent. When cancelled while it waits, it waits for the `release` signal
    and then ends Canceled."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.finished = False
        self.released = False

    @workflow.run
    async def run(self, value: str, wait: bool) -> dict:
        if wait:
            try:
                await workflow.wait_condition(lambda: self.finished)
            except asyncio.CancelledError:
                await workflow.wait_condition(lambda: self.released)
                raise
        return _whoami(value, self.notes)

    @workflow.signal
    def finish(self, note: str) -> None:
        self.notes.append(note)
        self.finished = True

    @workflow.signal
    def release(self) -> None:
        self.released = True


@workflow.defn
class FailingChild:
    @workflow.run
    async def run(self, message: str) -> None:
        raise ApplicationError(message, "some detail", type="ChildBroke")


@workflow.defn
class FlakyChild:
    """Fails its first `failures` attempts (runs of its retry chain), then returns."""

    @workflow.run
    async def run(self, failures: int) -> dict:
        attempt = workflow.info().attempt
        if attempt <= failures:
            raise ApplicationError(f"attempt {attempt} fails on purpose", type="Flaky")
        result = _whoami(failures, [])
        result["memo"] = workflow.memo_value("owner", default=None)
        return result


# What a parent saw -----------------------------------------------------------------------


def seen(err: BaseException) -> list[Any]:
    """An error as [type name, message, ...]: a ChildWorkflowError adds its retry state and
    its cause (flattened the same way); an ApplicationError its type; a TimeoutError its
    timeout type; a WorkflowAlreadyStartedError the id and type it names."""
    out: list[Any] = [type(err).__name__,
                      err.message if isinstance(err, FailureError) else str(err)]
    if isinstance(err, ChildWorkflowError):
        out.append(err.retry_state.name if err.retry_state is not None else None)
        out.append(seen(err.cause) if err.cause is not None else None)
    elif isinstance(err, ApplicationError):
        out.append(err.type)
    elif isinstance(err, TemporalTimeoutError):
        out.append(err.type.name if err.type is not None else None)
    elif isinstance(err, WorkflowAlreadyStartedError):
        out.extend([err.workflow_id, err.workflow_type])
    return out


async def _outcome(awaitable) -> list[Any]:
    try:
        return ["ok", await awaitable]
    except (FailureError, asyncio.CancelledError) as err:
        return seen(err)


# Parents ------------------------------------------------------------------------------------


@workflow.defn
class ParentWorkflow:
    """Runs one ChildWorkflow and returns its result (fails if the child fails)."""

    @workflow.run
    async def run(self, child_id: str, value: str, wait: bool) -> dict:
        return await workflow.execute_child_workflow(ChildWorkflow.run, args=[value, wait],
                                                     id=child_id)


@workflow.defn
class ParentOfFailingChild:
    """Does not catch its child's failure: it fails with the ChildWorkflowError."""

    @workflow.run
    async def run(self, child_id: str, message: str) -> None:
        await workflow.execute_child_workflow(FailingChild.run, message, id=child_id)


@workflow.defn
class ParentWithOptions:
    """Runs a FlakyChild with every start option set."""

    @workflow.run
    async def run(self, child_id: str, child_queue: str, failures: int) -> dict:
        return await workflow.execute_child_workflow(
            FlakyChild.run, failures, id=child_id, task_queue=child_queue,
            execution_timeout=timedelta(seconds=60), run_timeout=timedelta(seconds=30),
            task_timeout=timedelta(seconds=7),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200),
                                     backoff_coefficient=1.0, maximum_attempts=5),
            memo={"owner": "parent", "size": 3})


@workflow.defn
class ReuseIdParent:
    """Runs a child to completion, then starts another one with the same id twice: with
    REJECT_DUPLICATE (refused), then with ALLOW_DUPLICATE (runs)."""

    @workflow.run
    async def run(self, child_id: str) -> list[list[Any]]:
        first = await _outcome(workflow.execute_child_workflow(
            ChildWorkflow.run, args=["first", False], id=child_id))
        rejected = await _outcome(workflow.execute_child_workflow(
            ChildWorkflow.run, args=["second", False], id=child_id,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE))
        allowed = await _outcome(workflow.execute_child_workflow(
            ChildWorkflow.run, args=["third", False], id=child_id,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE))
        return [first, rejected, allowed]


@workflow.defn
class ConflictParent:
    """Starts a child whose id a running workflow already has."""

    @workflow.run
    async def run(self, child_id: str) -> list[Any]:
        return await _outcome(workflow.start_child_workflow(
            ChildWorkflow.run, args=["conflict", True], id=child_id))


@workflow.defn
class TimeoutParent:
    """Runs a child that waits longer than its 2 s execution timeout."""

    @workflow.run
    async def run(self, child_id: str) -> list[Any]:
        return await _outcome(workflow.execute_child_workflow(
            ChildWorkflow.run, args=["too slow", True], id=child_id,
            execution_timeout=timedelta(seconds=2)))


@workflow.defn
class CancelChildParent:
    """Starts a waiting child (abandoned when the parent closes), cancels it with the given
    cancellation type, and keeps what it saw (the `seen_so_far` query). With `linger`, it
    returns that after the `finish` signal, so that it is still running when the child's
    cancellation comes back; without, it returns at once."""

    def __init__(self) -> None:
        self.outcome: list[Any] | None = None
        self.finished = False

    @workflow.run
    async def run(self, child_id: str, cancellation_type: str, linger: bool) -> list[Any]:
        handle = await workflow.start_child_workflow(
            ChildWorkflow.run, args=["cancel me", True], id=child_id,
            cancellation_type=workflow.ChildWorkflowCancellationType[cancellation_type],
            parent_close_policy=workflow.ParentClosePolicy.ABANDON)
        handle.cancel()
        self.outcome = await _outcome(handle)
        if linger:
            await workflow.wait_condition(lambda: self.finished)
        return self.outcome

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def seen_so_far(self) -> list[Any] | None:
        return self.outcome


@workflow.defn
class ClosingParent:
    """Starts a waiting child with a parent close policy; on the `close` signal it closes as
    `how` says: "complete", "fail" or "continue" (as new; the next run returns at once).
    With "wait" it never closes by itself (it is terminated, or times out)."""

    def __init__(self) -> None:
        self.closing = False

    @workflow.run
    async def run(self, child_id: str, policy: str, how: str) -> str:
        if how == "continued":
            return "continued"
        await workflow.start_child_workflow(
            ChildWorkflow.run, args=["left behind", True], id=child_id,
            parent_close_policy=workflow.ParentClosePolicy[policy])
        await workflow.wait_condition(lambda: self.closing and how != "wait")
        if how == "fail":
            raise ApplicationError("parent fails on purpose", type="ParentBroke",
                                   non_retryable=True)
        if how == "continue":
            workflow.continue_as_new(args=[child_id, policy, "continued"])
        return "parent done"

    @workflow.signal
    def close(self) -> None:
        self.closing = True


@workflow.defn
class SignalChildParent:
    """Signals its child `finish` through the child handle, then returns the child's
    result."""

    @workflow.run
    async def run(self, child_id: str) -> dict:
        handle = await workflow.start_child_workflow(
            ChildWorkflow.run, args=["signalled", True], id=child_id)
        await handle.signal(ChildWorkflow.finish, "from parent")
        return await handle


@workflow.defn
class FanOutParent:
    """Runs a child per id, all started in one workflow task."""

    @workflow.run
    async def run(self, child_ids: list[str]) -> list[dict]:
        return list(await asyncio.gather(*(
            workflow.execute_child_workflow(ChildWorkflow.run, args=[i, False], id=i)
            for i in child_ids)))


WORKFLOWS = [
    ChildWorkflow,
    FailingChild,
    FlakyChild,
    ParentWorkflow,
    ParentOfFailingChild,
    ParentWithOptions,
    ReuseIdParent,
    ConflictParent,
    TimeoutParent,
    CancelChildParent,
    ClosingParent,
    SignalChildParent,
    FanOutParent,
]
