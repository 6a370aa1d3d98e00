"""Workflows and activities of the signal, query and update tests, in a small module of their
own: the workflow sandbox re-imports a workflow's module for every run it starts.

Everything a workflow received is returned or queryable, so that the tests can check that
each message arrived exactly once and in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

ACTIVITY_TIMEOUT = timedelta(seconds=30)


# Activities ---------------------------------------------------------------------------------


@activity.defn
async def pause(seconds: float) -> str:
    """Run as a local activity, keeps the workflow task that runs it open for `seconds`."""
    await asyncio.sleep(seconds)
    return f"paused {seconds:g} s"


@activity.defn
async def clean_up(what: str) -> str:
    return f"cleaned up {what}"


# Signals ------------------------------------------------------------------------------------


@workflow.defn
class SignalWorkflow:
    """Records every signal as [handler, value]; returns them once `expected` arrived."""

    def __init__(self) -> None:
        self.received: list[list[str]] = []

    @workflow.run
    async def run(self, expected: int) -> list[list[str]]:
        await workflow.wait_condition(lambda: len(self.received) >= expected)
        return self.received

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(["add", value])

    @workflow.signal(name="custom-signal")
    def renamed(self, value: str) -> None:
        self.received.append(["custom-signal", value])

    @workflow.signal(dynamic=True)
    def anything(self, name: str, args: Sequence[RawValue]) -> None:
        values = [workflow.payload_converter().from_payload(a.payload, str) for a in args]
        self.received.append([f"dynamic:{name}", *values])

    @workflow.query
    def seen(self) -> list[list[str]]:
        return self.received


@workflow.defn
class CountSignalsWorkflow:
    """Counts `hit` signals until it has seen `expected` of them; returns the values in the
    order they arrived."""

    def __init__(self) -> None:
        self.values: list[int] = []

    @workflow.run
    async def run(self, expected: int) -> list[int]:
        await workflow.wait_condition(lambda: len(self.values) >= expected)
        return self.values

    @workflow.signal
    def hit(self, value: int) -> None:
        self.values.append(value)


@workflow.defn
class ReturnOnFirstSignalWorkflow:
    """Returns soon after its first signal: the workflow task that sees it runs a local
    activity of `seconds` and then completes the workflow with every signal seen by then.
    Signals that arrive while that task runs must make the server refuse the completion."""

    def __init__(self) -> None:
        self.values: list[int] = []

    @workflow.run
    async def run(self, seconds: float) -> list[int]:
        await workflow.wait_condition(lambda: bool(self.values))
        await workflow.execute_local_activity(
            pause, seconds, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        return self.values

    @workflow.signal
    def hit(self, value: int) -> None:
        self.values.append(value)


@workflow.defn
class FailsUntilSignaledWorkflow:
    """Workflow code with a bug: it raises (a workflow task failure, retried by the server)
    until a signal has arrived."""

    def __init__(self) -> None:
        self.values: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        if not self.values:
            raise RuntimeError("workflow code bug: no signal yet")
        return self.values

    @workflow.signal
    def add(self, value: str) -> None:
        self.values.append(value)


@workflow.defn
class BusyFirstTaskWorkflow:
    """Its first workflow task stays open for `seconds` (a local activity); then it waits for
    one signal. The `stage` query says how far it got."""

    def __init__(self) -> None:
        self.stage = "started"
        self.values: list[str] = []

    @workflow.run
    async def run(self, seconds: float) -> list[str]:
        self.stage = await workflow.execute_local_activity(
            pause, seconds, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        await workflow.wait_condition(lambda: bool(self.values))
        return [self.stage, *self.values]

    @workflow.signal
    def add(self, value: str) -> None:
        self.values.append(value)

    @workflow.query
    def current_stage(self) -> str:
        return self.stage


# Queries ------------------------------------------------------------------------------------


@workflow.defn
class QueryWorkflow:
    """Answers queries about its state. `mode` is "wait" (runs until the `finish` signal),
    "complete" (returns at once) or "fail" (fails at once)."""

    def __init__(self) -> None:
        self.state = "initial"
        self.finished = False

    @workflow.run
    async def run(self, mode: str) -> str:
        self.state = f"running ({mode})"
        if mode == "fail":
            raise ApplicationError("failed on purpose", type="QueryWorkflowFailed")
        if mode == "wait":
            await workflow.wait_condition(lambda: self.finished)
        self.state = f"done ({mode})"
        return self.state

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def get_state(self) -> str:
        return self.state

    @workflow.query(name="custom-query")
    def renamed(self) -> str:
        return f"custom: {self.state}"

    @workflow.query
    def add(self, a: int, b: int) -> int:
        return a + b

    @workflow.query(dynamic=True)
    def anything(self, name: str, args: Sequence[RawValue]) -> str:
        values = [workflow.payload_converter().from_payload(a.payload, str) for a in args]
        return f"dynamic {name}({', '.join(values)}) in {self.state}"


# Updates ------------------------------------------------------------------------------------


@workflow.defn
class UpdateWorkflow:
    """Keeps a list of values that updates append to; runs until the `finish` signal (and
    its updates are done), or at once on `abandon`."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.released = False
        self.finished = False
        self.abandoned = False

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(
            lambda: self.abandoned or (self.finished and workflow.all_handlers_finished())
        )
        return self.values

    @workflow.update
    async def append(self, value: str) -> list[str]:
        self.values.append(value)
        return list(self.values)

    @append.validator
    def validate_append(self, value: str) -> None:
        if not value or value.startswith("bad"):
            raise ValueError(f"rejected value {value!r}")

    @workflow.update(name="custom-update")
    async def renamed(self, value: str) -> str:
        self.values.append(value)
        return f"custom: {value}"

    @workflow.update
    async def fail_after_accepting(self, message: str) -> str:
        raise ApplicationError(message, type="UpdateBroke")

    @workflow.update(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def wait_for_release(self, tag: str) -> str:
        """Accepted at once; completes only after the `release` signal."""
        self.values.append(f"waiting {tag}")
        await workflow.wait_condition(lambda: self.released)
        self.values.append(f"released {tag}")
        return f"{tag} released"

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.signal
    def abandon(self) -> None:
        self.abandoned = True

    @workflow.query
    def current_values(self) -> list[str]:
        return self.values


# Between workflows --------------------------------------------------------------------------


def _describe(err: BaseException) -> list[str]:
    """What a workflow saw of a failed external call: the exception type, its message and, for
    an ApplicationError, its type."""
    if isinstance(err, ApplicationError):
        return [type(err).__name__, err.message, err.type or ""]
    return [type(err).__name__, str(err), ""]


async def _outcome(call) -> list[str]:
    try:
        await call
    except Exception as err:  # noqa: BLE001 - the test checks what it was
        return _describe(err)
    return ["ok"]


async def _each(call, targets: list[str], concurrently: bool) -> list[list[str]]:
    """`call(target)` for each target: one after the other, or all in one workflow task."""
    if concurrently:
        return list(await asyncio.gather(*(_outcome(call(t)) for t in targets)))
    return [await _outcome(call(t)) for t in targets]


@workflow.defn
class SignalExternalWorkflow:
    """Signals `add(value)` to each target, one after the other or all at once; returns, per
    target, ["ok"] or what failed."""

    @workflow.run
    async def run(self, targets: list[str], value: str, concurrently: bool) -> list[list[str]]:
        return await _each(
            lambda t: workflow.get_external_workflow_handle(t).signal(SignalWorkflow.add, value),
            targets, concurrently)


@workflow.defn
class CancelExternalWorkflow:
    """Asks for the cancellation of each target, one after the other or all at once;
    returns, per target, ["ok"] or what failed."""

    @workflow.run
    async def run(self, targets: list[str], concurrently: bool) -> list[list[str]]:
        return await _each(lambda t: workflow.get_external_workflow_handle(t).cancel(),
                           targets, concurrently)


@workflow.defn
class CleansUpOnCancelWorkflow:
    """Waits forever; when cancelled, runs a clean-up activity and completes normally."""

    @workflow.run
    async def run(self, name: str) -> str:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:
            return await workflow.execute_activity(
                clean_up, name, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        raise ApplicationError("woke up without being cancelled")


WORKFLOWS = [
    SignalWorkflow,
    CountSignalsWorkflow,
    ReturnOnFirstSignalWorkflow,
    FailsUntilSignaledWorkflow,
    BusyFirstTaskWorkflow,
    QueryWorkflow,
    UpdateWorkflow,
    SignalExternalWorkflow,
    CancelExternalWorkflow,
    CleansUpOnCancelWorkflow,
]
ACTIVITIES = [pause, clean_up]
