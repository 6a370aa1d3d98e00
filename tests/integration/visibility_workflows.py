"""Workflows of test_visibility.py, in a small module of their own: the workflow sandbox
re-imports a workflow's module for every run it starts.

The search attribute keys are defined here so that the workflows can upsert them; the tests
register them on the server (custom search attributes are namespace-wide).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

# The custom search attributes the suite registers, one of each type.
KEYWORD = SearchAttributeKey.for_keyword("VisKeyword")
TEXT = SearchAttributeKey.for_text("VisText")
INT = SearchAttributeKey.for_int("VisInt")
DOUBLE = SearchAttributeKey.for_float("VisDouble")
BOOL = SearchAttributeKey.for_bool("VisBool")
DATETIME = SearchAttributeKey.for_datetime("VisDatetime")
KEYWORD_LIST = SearchAttributeKey.for_keyword_list("VisKeywordList")
ALL_KEYS = [KEYWORD, TEXT, INT, DOUBLE, BOOL, DATETIME, KEYWORD_LIST]


@workflow.defn
class VisWorkflow:
    """Ends as `outcome` says: "complete" (returns `outcome`), "fail" (an ApplicationError),
    or "wait" (returns once signalled `finish`)."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.run
    async def run(self, outcome: str) -> str:
        if outcome == "fail":
            raise ApplicationError("failed on purpose", non_retryable=True)
        if outcome == "wait":
            await workflow.wait_condition(lambda: self.finished)
        return outcome

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@workflow.defn
class OtherTypeWorkflow:
    """Returns at once: a second workflow type for WorkflowType filters."""

    @workflow.run
    async def run(self) -> str:
        return "other"


@workflow.defn
class VisParent:
    """Starts VisWorkflow `child_id` (which waits for its `finish` signal) and returns its
    result."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        return await workflow.execute_child_workflow(VisWorkflow.run, "wait", id=child_id)


@workflow.defn
class UpsertingWorkflow:
    """Applies each `step` signal (a list of changes) to its search attributes or memo, then
    waits for the next; returns once signalled `finish`.

    A change is [kind, name, value]: kind "typed" sets (value not None) or unsets (None) one of
    ALL_KEYS by name through upsert_search_attributes with typed updates; "untyped" upserts
    the dict {name: value} (the SDK's deprecated form; a value [] removes it); "memo" upserts
    {name: value} into the memo (None removes it). After each step it records what
    workflow.info() shows in `seen`."""

    def __init__(self) -> None:
        self.steps: list[list[list[Any]]] = []
        self.finished = False
        self.seen: list[dict] = []

    @workflow.run
    async def run(self) -> list[dict]:
        while True:
            await workflow.wait_condition(lambda: bool(self.steps) or self.finished)
            if not self.steps:
                return self.seen
            self.apply(self.steps.pop(0))

    def apply(self, changes: list[list[Any]]) -> None:
        keys = {key.name: key for key in ALL_KEYS}
        typed = []
        for kind, name, value in changes:
            if kind == "typed":
                key = keys[name]
                if value is None:
                    typed.append(key.value_unset())
                else:
                    if key is DATETIME:
                        value = datetime.fromisoformat(value)
                    typed.append(key.value_set(value))
            elif kind == "untyped":
                workflow.upsert_search_attributes({name: value})  # type: ignore[arg-type]
            elif kind == "memo":
                workflow.upsert_memo({name: value})
        if typed:
            workflow.upsert_search_attributes(typed)
        info = workflow.info()
        self.seen.append({
            "typed": sorted(pair.key.name for pair in info.typed_search_attributes),
            "memo": sorted(workflow.memo().keys()),
        })

    @workflow.signal
    def step(self, changes: list[list[Any]]) -> None:
        self.steps.append(changes)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def steps_done(self) -> int:
        return len(self.seen)


@workflow.defn
class ContinuingWorkflow:
    """The first run upserts VisBool = true and continues as new (search attributes and memo
    are not given, so the new run keeps the old run's); the second waits for `finish`."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.run
    async def run(self, generation: int) -> int:
        if generation == 0:
            workflow.upsert_search_attributes([BOOL.value_set(True)])
            workflow.continue_as_new(args=[1])
        await workflow.wait_condition(lambda: self.finished)
        return generation

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@workflow.defn
class UpsertAtStart:
    """Upserts {`name`: `value`} (the untyped form) in its first workflow task, then waits
    for `finish`."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.run
    async def run(self, name: str, value: Any) -> None:
        workflow.upsert_search_attributes({name: value})  # type: ignore[arg-type]
        await workflow.wait_condition(lambda: self.finished)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@workflow.defn
class PendingActivitiesWorkflow:
    """Schedules `count` activities on `activity_queue` (where nothing polls) and waits."""

    @workflow.run
    async def run(self, count: int, activity_queue: str) -> None:
        await asyncio.gather(*(
            workflow.execute_activity(noop, task_queue=activity_queue,
                                      start_to_close_timeout=timedelta(minutes=5))
            for _ in range(count)
        ))


@activity.defn
async def noop() -> None:
    """An activity, so that a worker polls its activity task queue too."""


WORKFLOWS = [VisWorkflow, OtherTypeWorkflow, VisParent, UpsertingWorkflow, ContinuingWorkflow,
             UpsertAtStart, PendingActivitiesWorkflow]
ACTIVITIES = [noop]
