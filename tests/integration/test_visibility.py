"""Visibility: listing, counting and scanning runs with Temporal's List Filter language,
custom search attributes (registration, limits, values set at start, upserted by the
workflow, carried through continue-as-new), memos in list rows, the CLI's visibility
commands, DescribeTaskQueue (pollers, backlog) and GetWorkflowExecutionHistoryReverse.

Every expected set, code and text was read off Temporal's dev server (temporal CLI 1.9.1,
server 1.32.0, SQLite visibility), which is the reference; where it behaves surprisingly a
comment says so. Visibility is eventually consistent: a change must show within a second,
and the tests poll a list or count for up to VISIBLE_WITHIN_S.

All tests share the `default` namespace, so every query is restricted to the test's own runs
(its task queue or a workflow id prefix). Custom search attributes are namespace-wide: the
suite registers one of each type (visibility_workflows.ALL_KEYS) and keeps them; tests that
add or remove attributes use unique names of their own and remove them again. With SQL
visibility a namespace may hold at most 10 Keyword and 3 each of Text, Int, Double, Bool,
Datetime and KeywordList custom attributes; the suite keeps 1 of each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowExecution as ApiExecution
from temporalio.api.enums.v1 import (
    EventType,
    IndexedValueType,
    TaskQueueType,
    WorkflowTaskFailedCause,
)
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    DescribeTaskQueueRequest,
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryReverseRequest,
    ListWorkflowExecutionsRequest,
    ScanWorkflowExecutionsRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker._worker import load_default_build_id

import visibility_workflows
from helpers import history_events, run_cli, types_of, unique_id, wait_for_event
from visibility_workflows import (
    BOOL,
    DATETIME,
    DOUBLE,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    TEXT,
    ContinuingWorkflow,
    OtherTypeWorkflow,
    PendingActivitiesWorkflow,
    UpsertAtStart,
    UpsertingWorkflow,
    VisParent,
    VisWorkflow,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Dictionary-based search attributes are deprecated:DeprecationWarning")

E = EventType
T = IndexedValueType
INVALID = RPCStatusCode.INVALID_ARGUMENT
VISIBLE_WITHIN_S = 5.0
POLL_S = 0.2  # the dev server allows 10 visibility calls per second per namespace
NAMESPACE = "default"

SUITE_ATTRIBUTES = {
    KEYWORD.name: T.INDEXED_VALUE_TYPE_KEYWORD,
    TEXT.name: T.INDEXED_VALUE_TYPE_TEXT,
    INT.name: T.INDEXED_VALUE_TYPE_INT,
    DOUBLE.name: T.INDEXED_VALUE_TYPE_DOUBLE,
    BOOL.name: T.INDEXED_VALUE_TYPE_BOOL,
    DATETIME.name: T.INDEXED_VALUE_TYPE_DATETIME,
    KEYWORD_LIST.name: T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}
# ListSearchAttributes' system_attributes on the dev server (SQL visibility).
SYSTEM_ATTRIBUTES = {
    "BatcherNamespace": T.INDEXED_VALUE_TYPE_KEYWORD,
    "BatcherUser": T.INDEXED_VALUE_TYPE_KEYWORD,
    "BinaryChecksums": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "BuildIds": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "CloseTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "ExecutionDuration": T.INDEXED_VALUE_TYPE_INT,
    "ExecutionStatus": T.INDEXED_VALUE_TYPE_KEYWORD,
    "ExecutionTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "HistoryLength": T.INDEXED_VALUE_TYPE_INT,
    "HistorySizeBytes": T.INDEXED_VALUE_TYPE_INT,
    "ParentRunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "ParentWorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RootRunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RootWorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "StartTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "StateTransitionCount": T.INDEXED_VALUE_TYPE_INT,
    "TaskQueue": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalChangeVersion": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalExternalPayloadCount": T.INDEXED_VALUE_TYPE_INT,
    "TemporalExternalPayloadSizeBytes": T.INDEXED_VALUE_TYPE_INT,
    "TemporalNamespaceDivision": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalPauseInfo": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalReportedProblems": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalSchedulePaused": T.INDEXED_VALUE_TYPE_BOOL,
    "TemporalScheduledById": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalScheduledStartTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "TemporalUsedWorkerDeploymentVersions": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalWorkerDeployment": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalWorkerDeploymentVersion": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalWorkflowVersioningBehavior": T.INDEXED_VALUE_TYPE_KEYWORD,
    "WorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "WorkflowType": T.INDEXED_VALUE_TYPE_KEYWORD,
}
# Custom attributes a namespace may hold per type with SQL visibility (the dev server's
# pre-allocated columns), and the type's name in the refusal.
LIMITS = {
    T.INDEXED_VALUE_TYPE_KEYWORD: (10, "Keyword"),
    T.INDEXED_VALUE_TYPE_TEXT: (3, "Text"),
    T.INDEXED_VALUE_TYPE_INT: (3, "Int"),
    T.INDEXED_VALUE_TYPE_DOUBLE: (3, "Double"),
    T.INDEXED_VALUE_TYPE_BOOL: (3, "Bool"),
    T.INDEXED_VALUE_TYPE_DATETIME: (3, "Datetime"),
    T.INDEXED_VALUE_TYPE_KEYWORD_LIST: (3, "KeywordList"),
}
# The server adds BuildIds (the worker's build ids, e.g. ["unversioned",
# "unversioned:<build id>"]) to a run once a worker completed one of its workflow tasks.
SERVER_ADDED = {"BuildIds"}


# Helpers -------------------------------------------------------------------------------------


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=visibility_workflows.WORKFLOWS,
                  activities=visibility_workflows.ACTIVITIES, **options)


def attributes(*pairs: tuple[SearchAttributeKey, Any]) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(key, value) for key, value in pairs])


def custom(typed: TypedSearchAttributes) -> dict[str, Any]:
    """A run's search attributes by name, those the server adds itself left out."""
    return {pair.key.name: pair.value for pair in typed if pair.key.name not in SERVER_ADDED}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def rfc3339(stamp: Timestamp) -> str:
    """A timestamp with all its nanoseconds, as the query language takes it."""
    return f"{stamp.ToDatetime():%Y-%m-%dT%H:%M:%S}.{stamp.nanos:09d}Z"


def ns(stamp: Timestamp) -> int:
    return stamp.seconds * 1_000_000_000 + stamp.nanos


async def register_suite_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=NAMESPACE, search_attributes=SUITE_ATTRIBUTES))


@pytest.fixture
async def registered(client: Client) -> None:
    """The suite's custom search attributes, registered on the server. Registering names that
    exist already succeeds and changes nothing (test_registering_again_changes_nothing), so
    every test may ask for them."""
    await register_suite_attributes(client)


async def custom_attributes(client: Client) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=NAMESPACE))
    return dict(response.custom_attributes)


async def add_attributes(client: Client, attrs: dict[str, int]) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=NAMESPACE, search_attributes=attrs))


async def remove_attributes(client: Client, names: list[str]) -> None:
    await client.operator_service.remove_search_attributes(
        RemoveSearchAttributesRequest(namespace=NAMESPACE, search_attributes=names))


async def eventually(fetch: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool],
                     what: str, within_s: float = VISIBLE_WITHIN_S) -> Any:
    """Calls fetch() until accept() takes its answer; that answer."""
    deadline = time.monotonic() + within_s
    while True:
        answer = await fetch()
        if accept(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {within_s:g} s; last: {answer!r}")
        await asyncio.sleep(POLL_S)


async def listed(client: Client, query: str, **options: Any) -> list[WorkflowExecution]:
    return [row async for row in client.list_workflows(query, **options)]


async def until_listed(client: Client, query: str, expected_ids: list[str],
                       within_s: float = VISIBLE_WITHIN_S) -> list[WorkflowExecution]:
    """Polls until the query lists exactly `expected_ids` (any order); the rows."""
    return await eventually(lambda: listed(client, query),
                            lambda rows: sorted(r.id for r in rows) == sorted(expected_ids),
                            f"{sorted(expected_ids)} for {query!r}", within_s)


async def until_row(client: Client, workflow_id: str, accept: Callable[[WorkflowExecution], bool],
                    what: str) -> WorkflowExecution:
    """Polls until the latest listed run of `workflow_id` passes accept(); that row."""
    async def fetch():
        rows = await listed(client, f"WorkflowId = '{workflow_id}'")
        return rows[0] if rows else None
    return await eventually(fetch, lambda row: row is not None and accept(row), what)


async def raw_error(call: Awaitable[Any]) -> tuple[RPCStatusCode, str]:
    with pytest.raises(RPCError) as caught:
        await call
    return caught.value.status, caught.value.message


# The population the query-language tests filter ------------------------------------------------


ALL_NAMES = {"w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "p", "c"}
RUNNING = {"w2", "w7", "p", "c"}
CLOSED = ALL_NAMES - RUNNING


@dataclass
class Population:
    """Eleven runs on one task queue, named w1..w9, p (a parent) and c (its child):

    | name | type | status | custom search attributes |
    | w1 | VisWorkflow | Completed | alpha, "the quick brown fox", 10, 1.5, true, 2024-01-01,
      [red green] |
    | w2 | VisWorkflow | Running | beta, "lazy dog", 20, 2.5, false, 2024-06-01T12:00, [green] |
    | w3 | VisWorkflow | Failed | alphabet, -, 30, -0.5, true, -, [blue] |
    | w4 | OtherTypeWorkflow | Completed | - |
    | w5 | VisWorkflow | Terminated | gamma, -, 40 |
    | w6 | VisWorkflow | Completed, signalled 2.5 s in | delta, -, -5, 100, false,
      2025-03-15T08:30, [red] |
    | w7 | VisWorkflow | Running, start delayed by an hour | - |
    | w8 | VisWorkflow | Canceled | - |
    | w9 | VisWorkflow | TimedOut (2 s execution timeout) | - |
    | p | VisParent | Running (waits for c) | - |
    | c | VisWorkflow | Running (child of p) | - |

    (Keyword, Text, Int, Double, Bool, Datetime, KeywordList, in that order.)"""

    task_queue: str
    prefix: str
    rows: dict[str, WorkflowExecution]  # name -> its listed row

    def id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def name(self, workflow_id: str) -> str:
        return workflow_id[len(self.prefix) + 1:]


_populations: dict[str, Population] = {}


async def population(server: Any, client: Client) -> Population:
    """The population on `server`, built by the first test that asks for it."""
    key = f"{server.store}@{server.address}"
    if key not in _populations:
        _populations[key] = await build_population(client)
    return _populations[key]


async def build_population(client: Client) -> Population:
    await register_suite_attributes(client)
    task_queue, prefix = f"tq-{uuid.uuid4()}", unique_id("vis")

    def wid(name: str) -> str:
        return f"{prefix}-{name}"

    async def started(handle) -> None:
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)

    async with worker(client, task_queue):
        start = client.start_workflow
        w1 = await start(VisWorkflow.run, "complete", id=wid("w1"), task_queue=task_queue,
                         search_attributes=attributes(
                             (KEYWORD, "alpha"), (TEXT, "the quick brown fox"), (INT, 10),
                             (DOUBLE, 1.5), (BOOL, True), (DATETIME, utc("2024-01-01T00:00:00Z")),
                             (KEYWORD_LIST, ["red", "green"])))
        w2 = await start(VisWorkflow.run, "wait", id=wid("w2"), task_queue=task_queue,
                         search_attributes=attributes(
                             (KEYWORD, "beta"), (TEXT, "lazy dog"), (INT, 20), (DOUBLE, 2.5),
                             (BOOL, False), (DATETIME, utc("2024-06-01T12:00:00Z")),
                             (KEYWORD_LIST, ["green"])))
        w3 = await start(VisWorkflow.run, "fail", id=wid("w3"), task_queue=task_queue,
                         search_attributes=attributes(
                             (KEYWORD, "alphabet"), (INT, 30), (DOUBLE, -0.5), (BOOL, True),
                             (KEYWORD_LIST, ["blue"])))
        w4 = await start(OtherTypeWorkflow.run, id=wid("w4"), task_queue=task_queue)
        w5 = await start(VisWorkflow.run, "wait", id=wid("w5"), task_queue=task_queue,
                         search_attributes=attributes((KEYWORD, "gamma"), (INT, 40)))
        w6 = await start(VisWorkflow.run, "wait", id=wid("w6"), task_queue=task_queue,
                         search_attributes=attributes(
                             (KEYWORD, "delta"), (INT, -5), (DOUBLE, 100.0), (BOOL, False),
                             (DATETIME, utc("2025-03-15T08:30:00Z")), (KEYWORD_LIST, ["red"])))
        await start(VisWorkflow.run, "wait", id=wid("w7"), task_queue=task_queue,
                    start_delay=timedelta(hours=1))
        w8 = await start(VisWorkflow.run, "wait", id=wid("w8"), task_queue=task_queue)
        w9 = await start(VisWorkflow.run, "wait", id=wid("w9"), task_queue=task_queue,
                         execution_timeout=timedelta(seconds=2))
        p = await start(VisParent.run, wid("c"), id=wid("p"), task_queue=task_queue)

        assert await w1.result() == "complete"
        assert await w4.result() == "other"
        with pytest.raises(WorkflowFailureError):
            await w3.result()
        await started(w5)
        await w5.terminate("population")
        await started(w8)
        await w8.cancel()
        with pytest.raises(WorkflowFailureError):
            await w8.result()
        await started(w6)
        await asyncio.sleep(2.5)
        await w6.signal(VisWorkflow.finish)
        await w6.result()
        with pytest.raises(WorkflowFailureError):
            await w9.result()
        await wait_for_event(p, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        await started(client.get_workflow_handle(wid("c")))
        await started(w2)

    statuses = {
        "w1": WorkflowExecutionStatus.COMPLETED, "w2": WorkflowExecutionStatus.RUNNING,
        "w3": WorkflowExecutionStatus.FAILED, "w4": WorkflowExecutionStatus.COMPLETED,
        "w5": WorkflowExecutionStatus.TERMINATED, "w6": WorkflowExecutionStatus.COMPLETED,
        "w7": WorkflowExecutionStatus.RUNNING, "w8": WorkflowExecutionStatus.CANCELED,
        "w9": WorkflowExecutionStatus.TIMED_OUT, "p": WorkflowExecutionStatus.RUNNING,
        "c": WorkflowExecutionStatus.RUNNING,
    }
    rows = await eventually(
        lambda: listed(client, f"TaskQueue = '{task_queue}'"),
        lambda rows: {r.id[len(prefix) + 1:]: r.status for r in rows} == statuses,
        "the population's final statuses")
    return Population(task_queue, prefix, {r.id[len(prefix) + 1:]: r for r in rows})


def query_cases(group: str, pop: Population) -> list[tuple[str, set[str]]]:
    """(query, the names it selects) for one group of the language."""
    rows = {name: row.raw_info for name, row in pop.rows.items()}

    def where(accept: Callable[[Any], bool], names=ALL_NAMES) -> set[str]:
        return {name for name in names if accept(rows[name])}

    if group == "keyword":
        return [
            ("VisKeyword = 'alpha'", {"w1"}),
            ("VisKeyword != 'alpha'", {"w2", "w3", "w5", "w6"}),
            ("VisKeyword > 'alpha'", {"w2", "w3", "w5", "w6"}),
            ("VisKeyword >= 'alpha'", {"w1", "w2", "w3", "w5", "w6"}),
            ("VisKeyword < 'beta'", {"w1", "w3"}),
            ("VisKeyword <= 'beta'", {"w1", "w2", "w3"}),
            ("VisKeyword IN ('alpha', 'gamma')", {"w1", "w5"}),
            ("VisKeyword NOT IN ('alpha', 'gamma')", {"w2", "w3", "w6"}),
            ("VisKeyword BETWEEN 'alpha' AND 'beta'", {"w1", "w2", "w3"}),
            ("VisKeyword NOT BETWEEN 'alpha' AND 'beta'", {"w5", "w6"}),
            ("VisKeyword STARTS_WITH 'alph'", {"w1", "w3"}),
            ("VisKeyword NOT STARTS_WITH 'alph'", {"w2", "w5", "w6"}),
            ("VisKeyword IS NULL", {"w4", "w7", "w8", "w9", "p", "c"}),
            ("VisKeyword IS NOT NULL", {"w1", "w2", "w3", "w5", "w6"}),
            ("VisKeyword = 'Alpha'", set()),  # case-sensitive
            ("VisKeyword = 'alpha '", set()),
        ]
    if group == "text":
        # Text matches tokens (case-insensitive), and `=` selects runs holding any of the
        # value's tokens. `!=` selects every run not matching, runs without the attribute
        # included (the dev server's SQLite full-text search).
        return [
            ("VisText = 'quick'", {"w1"}),
            ("VisText = 'QUICK'", {"w1"}),
            ("VisText = 'fox quick'", {"w1"}),
            ("VisText = 'the quick brown fox'", {"w1"}),
            ("VisText = 'fox cat'", {"w1"}),
            ("VisText = 'Fox, quick!'", {"w1"}),
            ("VisText = 'dog'", {"w2"}),
            ("VisText = 'qui'", set()),
            ("VisText != 'quick'", ALL_NAMES - {"w1"}),
            ("VisText IS NULL", ALL_NAMES - {"w1", "w2"}),
            ("VisText IS NOT NULL", {"w1", "w2"}),
        ]
    if group == "int":
        return [
            ("VisInt = 20", {"w2"}),
            ("VisInt != 20", {"w1", "w3", "w5", "w6"}),
            ("VisInt > 20", {"w3", "w5"}),
            ("VisInt >= 20", {"w2", "w3", "w5"}),
            ("VisInt < 20", {"w1", "w6"}),
            ("VisInt <= 20", {"w1", "w2", "w6"}),
            ("VisInt < 0", {"w6"}),
            ("VisInt IN (10, 40)", {"w1", "w5"}),
            ("VisInt NOT IN (10, 40)", {"w2", "w3", "w6"}),
            ("VisInt BETWEEN 15 AND 35", {"w2", "w3"}),
            ("VisInt IS NULL", {"w4", "w7", "w8", "w9", "p", "c"}),
            ("VisInt IS NOT NULL", {"w1", "w2", "w3", "w5", "w6"}),
        ]
    if group == "double":
        return [
            ("VisDouble = 1.5", {"w1"}),
            ("VisDouble != 1.5", {"w2", "w3", "w6"}),
            ("VisDouble > 1", {"w1", "w2", "w6"}),
            ("VisDouble >= 100", {"w6"}),
            ("VisDouble < 0", {"w3"}),
            ("VisDouble <= 1.5", {"w1", "w3"}),
            ("VisDouble BETWEEN -1 AND 2", {"w1", "w3"}),
            ("VisDouble IN (2.5, 100)", {"w2", "w6"}),
            ("VisDouble IS NULL", ALL_NAMES - {"w1", "w2", "w3", "w6"}),
        ]
    if group == "bool":
        return [
            ("VisBool = true", {"w1", "w3"}),
            ("VisBool = TRUE", {"w1", "w3"}),
            ("VisBool = false", {"w2", "w6"}),
            ("VisBool != true", {"w2", "w6"}),
            ("VisBool IS NULL", ALL_NAMES - {"w1", "w2", "w3", "w6"}),
            ("VisBool IS NOT NULL", {"w1", "w2", "w3", "w6"}),
        ]
    if group == "datetime":
        # Not compared: equality and bounds on the same day as a value. The dev server keeps a
        # custom Datetime as the text the JSON holds ("2024-01-01T00:00:00Z") and compares it
        # as text with the bound it formats as "2024-01-01 00:00:00+00:00", so
        # `VisDatetime = '2024-01-01T00:00:00Z'` selects nothing there.
        return [
            ("VisDatetime > '2024-03-01T00:00:00Z'", {"w2", "w6"}),
            ("VisDatetime >= '2024-03-01T00:00:00+02:00'", {"w2", "w6"}),
            ("VisDatetime < '2024-03-01T00:00:00Z'", {"w1"}),
            ("VisDatetime <= '2025-01-01T00:00:00Z'", {"w1", "w2"}),
            ("VisDatetime BETWEEN '2023-12-31T00:00:00Z' AND '2024-12-31T00:00:00Z'",
             {"w1", "w2"}),
            ("VisDatetime IS NULL", ALL_NAMES - {"w1", "w2", "w6"}),
            ("VisDatetime IS NOT NULL", {"w1", "w2", "w6"}),
        ]
    if group == "keyword_list":
        # `=` and IN select runs whose list holds a value; `!=` and NOT IN select every other
        # run, runs without the attribute included.
        return [
            ("VisKeywordList = 'green'", {"w1", "w2"}),
            ("VisKeywordList = 'red'", {"w1", "w6"}),
            ("VisKeywordList = 'gre'", set()),
            ("VisKeywordList != 'green'", ALL_NAMES - {"w1", "w2"}),
            ("VisKeywordList IN ('red', 'blue')", {"w1", "w3", "w6"}),
            ("VisKeywordList NOT IN ('green', 'blue')", ALL_NAMES - {"w1", "w2", "w3"}),
            ("VisKeywordList IS NULL", ALL_NAMES - {"w1", "w2", "w3", "w6"}),
            ("VisKeywordList IS NOT NULL", {"w1", "w2", "w3", "w6"}),
        ]
    if group == "status":
        return [
            ("ExecutionStatus = 'Running'", RUNNING),
            ("ExecutionStatus = 'Completed'", {"w1", "w4", "w6"}),
            ("ExecutionStatus = 'Failed'", {"w3"}),
            ("ExecutionStatus = 'Terminated'", {"w5"}),
            ("ExecutionStatus = 'Canceled'", {"w8"}),
            ("ExecutionStatus = 'TimedOut'", {"w9"}),
            ("ExecutionStatus = 'ContinuedAsNew'", set()),
            ("ExecutionStatus != 'Running'", CLOSED),
            ("ExecutionStatus IN ('Failed', 'Terminated')", {"w3", "w5"}),
            ("ExecutionStatus NOT IN ('Running', 'Completed')", {"w3", "w5", "w8", "w9"}),
            # The enum's numbers are taken too (1 Running, 2 Completed, ...).
            ("ExecutionStatus = 1", RUNNING),
            ("ExecutionStatus = 2", {"w1", "w4", "w6"}),
        ]
    if group == "ids_and_types":
        w1, w3 = rows["w1"].execution.run_id, rows["w3"].execution.run_id
        return [
            (f"WorkflowId = '{pop.id('w1')}'", {"w1"}),
            (f"WorkflowId != '{pop.id('w1')}'", ALL_NAMES - {"w1"}),
            (f"WorkflowId IN ('{pop.id('w1')}', '{pop.id('p')}')", {"w1", "p"}),
            (f"WorkflowId STARTS_WITH '{pop.prefix}-w'", ALL_NAMES - {"p", "c"}),
            (f"WorkflowId > '{pop.id('w5')}'", {"w6", "w7", "w8", "w9"}),
            (f"RunId = '{w1}'", {"w1"}),
            (f"RunId IN ('{w1}', '{w3}')", {"w1", "w3"}),
            ("WorkflowType = 'OtherTypeWorkflow'", {"w4"}),
            ("WorkflowType != 'VisWorkflow'", {"w4", "p"}),
            ("WorkflowType STARTS_WITH 'Vis'", ALL_NAMES - {"w4"}),
            ("WorkflowType IN ('VisParent', 'OtherTypeWorkflow')", {"w4", "p"}),
            (f"TaskQueue = '{pop.task_queue}'", ALL_NAMES),
            (f"TaskQueue != '{pop.task_queue}'", set()),
            (f"ParentWorkflowId = '{pop.id('p')}'", {"c"}),
            ("ParentWorkflowId IS NOT NULL", {"c"}),
            ("ParentWorkflowId IS NULL", ALL_NAMES - {"c"}),
            (f"RootWorkflowId = '{pop.id('p')}'", {"p", "c"}),
            (f"RootWorkflowId = '{pop.id('w1')}'", {"w1"}),
            ("RootWorkflowId IS NULL", set()),  # every run has a root, itself at least
        ]
    if group == "history_length":
        # A running run's row has no HistoryLength (nor StateTransitionCount,
        # ExecutionDuration, CloseTime): they are written when it closes.
        return [
            ("HistoryLength = 5", {"w1", "w3", "w4", "w5", "w9"}),
            ("HistoryLength > 5", {"w6", "w8"}),
            ("HistoryLength = 9", {"w6", "w8"}),
            ("HistoryLength <= 2", set()),
            ("HistoryLength IS NULL", RUNNING),
            ("HistoryLength IS NOT NULL", CLOSED),
        ]
    if group == "times":
        pivot = rows["w4"]
        start, close = ns(pivot.start_time), ns(pivot.close_time)
        later = datetime.now(timezone.utc) + timedelta(minutes=30)
        low, high = rows["w2"].start_time, rows["w6"].start_time
        return [
            (f"StartTime = '{rfc3339(pivot.start_time)}'", {"w4"}),
            (f"StartTime > '{rfc3339(pivot.start_time)}'",
             where(lambda r: ns(r.start_time) > start)),
            (f"StartTime >= '{rfc3339(pivot.start_time)}'",
             where(lambda r: ns(r.start_time) >= start)),
            (f"StartTime < '{rfc3339(pivot.start_time)}'",
             where(lambda r: ns(r.start_time) < start)),
            (f"StartTime <= '{rfc3339(pivot.start_time)}'",
             where(lambda r: ns(r.start_time) <= start)),
            (f"StartTime BETWEEN '{rfc3339(low)}' AND '{rfc3339(high)}'",
             where(lambda r: ns(low) <= ns(r.start_time) <= ns(high))),
            (f"CloseTime = '{rfc3339(pivot.close_time)}'", {"w4"}),
            (f"CloseTime > '{rfc3339(pivot.close_time)}'",
             where(lambda r: ns(r.close_time) > close, CLOSED)),
            (f"CloseTime <= '{rfc3339(pivot.close_time)}'",
             where(lambda r: ns(r.close_time) <= close, CLOSED)),
            ("CloseTime IS NULL", RUNNING),
            ("CloseTime IS NOT NULL", CLOSED),
            # A start delay moves the execution time; otherwise it is the start time.
            (f"ExecutionTime > '{later.isoformat()}'", {"w7"}),
            (f"ExecutionTime = '{rfc3339(rows['w1'].start_time)}'", {"w1"}),
            ("ExecutionTime IS NULL", set()),
        ]
    if group == "duration":
        # ExecutionDuration (close time less execution time) takes a Go duration, HH:MM:SS or
        # nanoseconds. w6 ran at least 2.5 s; the expected sets follow the listed durations.
        slow = where(lambda r: r.execution_duration.ToTimedelta() > timedelta(seconds=2),
                     CLOSED)
        assert "w6" in slow and "w1" not in slow, slow
        return [
            ("ExecutionDuration > '2s'", slow),
            ("ExecutionDuration > '00:00:02'", slow),
            ("ExecutionDuration > 2000000000", slow),
            ("ExecutionDuration <= '2s'", CLOSED - slow),
            ("ExecutionDuration < '1h'", CLOSED),
            ("ExecutionDuration >= '1h'", set()),
            ("ExecutionDuration IS NULL", RUNNING),
        ]
    if group == "logic":
        return [
            ("VisInt > 15 AND VisBool = true", {"w3"}),
            ("VisInt < 15 OR VisInt > 35", {"w1", "w5", "w6"}),
            # AND binds tighter than OR.
            ("VisInt < 15 OR VisInt > 35 AND ExecutionStatus = 'Terminated'", {"w1", "w5", "w6"}),
            ("(VisInt < 15 OR VisInt > 35) AND ExecutionStatus = 'Terminated'", {"w5"}),
            ("(VisBool = true AND (VisInt = 10 OR VisInt = 30)) OR VisKeyword = 'gamma'",
             {"w1", "w3", "w5"}),
            ("NOT VisInt = 10", {"w2", "w3", "w5", "w6"}),  # runs without VisInt are not in
            ("NOT (VisKeyword = 'alpha' OR VisKeyword = 'beta')", {"w3", "w5", "w6"}),
            ("VisKeyword IS NOT NULL AND NOT VisKeyword = 'beta'", {"w1", "w3", "w5", "w6"}),
            ("ExecutionStatus = 'Running' AND WorkflowType = 'VisWorkflow'", {"w2", "w7", "c"}),
        ]
    if group == "syntax":
        # Keywords in any case, double-quoted strings, back-quoted names, no spaces.
        return [
            ("VisKeyword in ('alpha') and VisInt between 5 and 15", {"w1"}),
            ("VisKeyword starts_with 'alph' or VisKeyword is null and VisInt = 1", {"w1", "w3"}),
            ('VisKeyword = "alpha"', {"w1"}),
            ("`VisKeyword` = 'alpha'", {"w1"}),
            ("VisKeyword='alpha'", {"w1"}),
            ("VisInt>=30", {"w3", "w5"}),
        ]
    raise AssertionError(group)


QUERY_GROUPS = ["keyword", "text", "int", "double", "bool", "datetime", "keyword_list",
                "status", "ids_and_types", "history_length", "times", "duration", "logic",
                "syntax"]


# The query language ----------------------------------------------------------------------------


@pytest.mark.parametrize("group", QUERY_GROUPS)
async def test_query_language(server, client: Client, registered: None, group: str):
    """Each query, restricted to the population's task queue, lists exactly the expected
    runs, each once, and counts as many."""
    pop = await population(server, client)
    wrong = []
    for query, expected in query_cases(group, pop):
        full = f"TaskQueue = '{pop.task_queue}' AND ({query})"
        names = sorted(pop.name(row.id) for row in await listed(client, full))
        count = (await client.count_workflows(full)).count
        if names != sorted(expected) or count != len(expected):
            wrong.append(f"{query}: listed {names}, counted {count}; expected {sorted(expected)}")
    assert wrong == []


async def test_list_order(server, client: Client, registered: None):
    """Rows come newest first: running runs (by start time, latest first), then closed runs
    by close time, latest first (the SQL store orders by COALESCE(close time, max) DESC,
    start time DESC, run id)."""
    pop = await population(server, client)
    rows = await listed(client, f"TaskQueue = '{pop.task_queue}'")
    names = [pop.name(r.id) for r in rows]

    def key(name: str) -> tuple:
        info = pop.rows[name].raw_info
        close = ns(info.close_time) if info.HasField("close_time") else float("inf")
        return (-close, -ns(info.start_time))

    assert names == sorted(ALL_NAMES, key=key)
    # The children and the delayed run were started last: c, then p's run, w7, w2.
    assert names[:4] == ["c", "p", "w7", "w2"]


# Counting ---------------------------------------------------------------------------------------


async def test_count_group_by_execution_status(server, client: Client, registered: None):
    pop = await population(server, client)
    where = f"TaskQueue = '{pop.task_queue}'"
    plain = await client.count_workflows(where)
    assert (plain.count, plain.groups) == (11, [])

    raw = await client.workflow_service.count_workflow_executions(CountWorkflowExecutionsRequest(
        namespace=NAMESPACE, query=f"{where} GROUP BY ExecutionStatus"), retry=True)
    assert raw.count == 11
    groups = {}
    for group in raw.groups:
        [value] = group.group_values
        # A group's value is a Keyword search attribute payload holding the status's name.
        assert dict(value.metadata) == {"type": b"Keyword", "encoding": b"json/plain"}
        groups[json.loads(value.data)] = group.count
        assert value.data == json.dumps(json.loads(value.data)).encode()
    # The dev server answered in the enum's order; SQL promises no order, so none is checked.
    assert groups == {"Running": 4, "Completed": 3, "Failed": 1, "Terminated": 1,
                      "Canceled": 1, "TimedOut": 1}

    sdk = await client.count_workflows(f"{where} GROUP BY ExecutionStatus")
    assert sdk.count == 11
    assert {tuple(g.group_values): g.count for g in sdk.groups} == {
        (name,): count for name, count in groups.items()}

    running = await client.count_workflows(
        f"{where} AND ExecutionStatus = 'Running' GROUP BY ExecutionStatus")
    assert [(g.group_values, g.count) for g in running.groups] == [(["Running"], 4)]
    assert running.count == 4

    nothing = await client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(
            namespace=NAMESPACE, query=f"{where} AND VisInt = 12345 GROUP BY ExecutionStatus"),
        retry=True)
    assert (nothing.count, list(nothing.groups)) == (0, [])


async def test_list_ignores_group_by(server, client: Client, registered: None):
    """Surprisingly, List and Scan accept GROUP BY ExecutionStatus and list the rows as
    without it."""
    pop = await population(server, client)
    where = f"TaskQueue = '{pop.task_queue}' AND ExecutionStatus = 'Completed'"
    grouped = await listed(client, f"{where} GROUP BY ExecutionStatus")
    assert sorted(pop.name(r.id) for r in grouped) == ["w1", "w4", "w6"]
    scan = await client.workflow_service.scan_workflow_executions(ScanWorkflowExecutionsRequest(
        namespace=NAMESPACE, query=f"{where} GROUP BY ExecutionStatus"), retry=True)
    assert sorted(pop.name(e.execution.workflow_id) for e in scan.executions) == [
        "w1", "w4", "w6"]


# Refused queries -----------------------------------------------------------------------------


Q = "invalid query: "
REFUSED_QUERIES = [
    # The server parses "select * from table1 where <query>" (27 characters before the
    # query, which is trimmed): positions count in that text.
    ("WorkflowId = ", Q + "malformed SQL query: syntax error at position 40"),
    ("WorkflowId = 'a' AND", Q + "malformed SQL query: syntax error at position 48"),
    ("(WorkflowId = 'a'", Q + "malformed SQL query: syntax error at position 45"),
    ("WorkflowId == 'a'", Q + "malformed SQL query: syntax error at position 41"),
    ("WorkflowId IN ()", Q + "malformed SQL query: syntax error at position 44"),
    ("WorkflowId IS 'a'", Q + "malformed SQL query: syntax error at position 45 near 'a'"),
    ("SELECT * FROM x", Q + "malformed SQL query: syntax error at position 34 near 'select'"),
    ("Nope = 'x'", Q + "invalid search attribute: Nope"),
    ("workflowid = 'a'", Q + "invalid search attribute: workflowid"),  # names are exact
    ("WorkflowId", Q + "invalid expression: incomplete expression"),
    ("WorkflowId = a", Q + "operation is not supported: column name on the right side of "
                           "comparison expression (did you forget to quote \"a\"?)"),
    ("WorkflowId = WorkflowType", Q + "operation is not supported: column name on the right "
     "side of comparison expression (did you forget to quote \"WorkflowType\"?)"),
    ("VisInt = 'abc'", Q + "invalid expression: invalid value type for search attribute "
                           "VisInt of type Int: \"abc\" (type: string)"),
    ("VisInt = true", Q + "invalid expression: invalid value type for search attribute "
                          "VisInt of type Int: true (type: bool)"),
    ("VisKeyword = 1", Q + "invalid expression: invalid value type for search attribute "
                           "VisKeyword of type Keyword: 1 (type: int64)"),
    ("VisBool = 'true'", Q + "invalid expression: invalid value type for search attribute "
                             "VisBool of type Bool: \"true\" (type: string)"),
    ("VisDouble = 'x'", Q + "invalid expression: invalid value type for search attribute "
                            "VisDouble of type Double: \"x\" (type: string)"),
    ("WorkflowId IN ('a', 1)", Q + "invalid expression: invalid value type for search "
                                   "attribute WorkflowId of type Keyword: 1 (type: int64)"),
    ("HistoryLength > 'a'", Q + "invalid expression: invalid value type for search attribute "
                                "HistoryLength of type Int: \"a\" (type: string)"),
    ("ExecutionStatus = 'Bogus'", Q + "invalid expression: invalid ExecutionStatus value "
                                      "'Bogus'"),
    ("ExecutionStatus = 'running'", Q + "invalid expression: invalid ExecutionStatus value "
                                        "'running'"),
    ("ExecutionStatus = 'Cancelled'", Q + "invalid expression: invalid ExecutionStatus value "
                                          "'Cancelled'"),
    ("ExecutionStatus = 99", Q + "invalid expression: invalid ExecutionStatus value 99"),
    ("StartTime = 'yesterday'", Q + "invalid expression: unable to parse datetime "
                                    "'yesterday'"),
    ("VisDatetime > '2024-03-01'", Q + "invalid expression: unable to parse datetime "
                                       "'2024-03-01'"),
    ("ExecutionDuration > 'abc'", Q + "invalid expression: invalid duration value for search "
                                      "attribute ExecutionDuration: abc"),
    ("VisText > 'a'", Q + "operation is not supported: operator '>' not supported for Text "
                          "type search attribute 'VisText'"),
    ("VisText IN ('a')", Q + "operation is not supported: operator 'IN' not supported for "
                             "Text type search attribute 'VisText'"),
    ("VisText STARTS_WITH 'a'", Q + "operation is not supported: operator 'STARTS_WITH' not "
                                    "supported for Text type search attribute 'VisText'"),
    ("VisText = '  '", Q + "invalid expression: no tokens found filtering on Text type search "
                           "attribute VisText"),
    ("VisKeywordList > 'blue'", Q + "operation is not supported: operator '>' not supported "
                                    "for KeywordList type search attribute 'VisKeywordList'"),
    ("VisKeywordList STARTS_WITH 'gr'", Q + "operation is not supported: operator "
     "'STARTS_WITH' not supported for KeywordList type search attribute 'VisKeywordList'"),
    ("VisKeywordList BETWEEN 'a' AND 'c'", Q + "invalid expression: cannot do range "
     "condition on search attribute 'VisKeywordList' of type KeywordList"),
    ("WorkflowId LIKE 'a%'", Q + "operation is not supported: operator 'LIKE' not supported "
                                 "for Keyword type search attribute 'WorkflowId'"),
    ("WorkflowId = 'a' LIMIT 10", Q + "operation is not supported: 'LIMIT' clause"),
    ("GROUP BY WorkflowType", Q + "operation is not supported: 'GROUP BY' clause is not "
                                  "supported for search attribute WorkflowType"),
    ("ExecutionStatus = 'Running' GROUP BY VisKeyword", Q + "operation is not supported: "
     "'GROUP BY' clause is not supported for search attribute VisKeyword"),
    ("WorkflowId = 'a' GROUP BY ExecutionStatus, WorkflowType", Q + "operation is not "
     "supported: 'GROUP BY' clause supports only a single field"),
]
# SQL visibility refuses ORDER BY, whatever it orders by; a Text attribute is refused first.
ORDER_BY_QUERIES = [
    ("ORDER BY StartTime", Q + "operation is not supported: 'ORDER BY' clause"),
    ("WorkflowId = 'a' ORDER BY StartTime DESC", Q + "operation is not supported: 'ORDER BY' "
                                                     "clause"),
    ("ExecutionStatus = 'Running' order by CloseTime asc, WorkflowId", Q + "operation is not "
     "supported: 'ORDER BY' clause"),
    ("ORDER BY VisInt", Q + "operation is not supported: 'ORDER BY' clause"),
    ("ORDER BY VisText", Q + "operation is not supported: unable to sort by search attribute "
                             "type Text"),
]


async def assert_refused_everywhere(client: Client, query: str, message: str) -> None:
    """List, Count and Scan refuse `query` with INVALID_ARGUMENT and `message`."""
    service = client.workflow_service
    calls = {
        "list": service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace=NAMESPACE, query=query), retry=True),
        "count": service.count_workflow_executions(
            CountWorkflowExecutionsRequest(namespace=NAMESPACE, query=query), retry=True),
        "scan": service.scan_workflow_executions(
            ScanWorkflowExecutionsRequest(namespace=NAMESPACE, query=query), retry=True),
    }
    answers = {name: await raw_error(call) for name, call in calls.items()}
    assert answers == {name: (INVALID, message) for name in calls}


@pytest.mark.parametrize("query,message", REFUSED_QUERIES, ids=[q for q, _ in REFUSED_QUERIES])
async def test_refused_query(client: Client, registered: None, query: str, message: str):
    await assert_refused_everywhere(client, query, message)


@pytest.mark.parametrize("query,message", ORDER_BY_QUERIES, ids=[q for q, _ in ORDER_BY_QUERIES])
async def test_order_by_is_refused(client: Client, registered: None, query: str, message: str):
    await assert_refused_everywhere(client, query, message)


async def test_refused_namespaces(client: Client):
    service = client.workflow_service
    assert await raw_error(service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="", query=""))) == (
            INVALID, "Namespace is empty.")
    assert await raw_error(service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="no-such-namespace", query=""))) == (
            RPCStatusCode.NOT_FOUND, "Namespace no-such-namespace is not found.")
    assert await raw_error(service.count_workflow_executions(
        CountWorkflowExecutionsRequest(namespace="no-such-namespace", query=""))) == (
            RPCStatusCode.NOT_FOUND, "Namespace no-such-namespace is not found.")


# Paging -------------------------------------------------------------------------------------


async def test_paging(client: Client, task_queue: str):
    """Five runs (no worker: they stay running) paged two at a time by the SDK, by raw
    ListWorkflowExecutions and by ScanWorkflowExecutions: every run once, pages of 2, 2, 1,
    and no page token after the last."""
    ids = [unique_id("page") for _ in range(5)]
    handles = [await client.start_workflow(VisWorkflow.run, "wait", id=i, task_queue=task_queue)
               for i in ids]
    try:
        query = f"TaskQueue = '{task_queue}'"
        await until_listed(client, query, ids)
        newest_first = list(reversed(ids))  # all running: latest start first

        sdk = await listed(client, query, page_size=2)
        assert [row.id for row in sdk] == newest_first

        for name in ("list", "scan"):
            pages, token = [], b""
            while True:
                if name == "list":
                    page = await client.workflow_service.list_workflow_executions(
                        ListWorkflowExecutionsRequest(namespace=NAMESPACE, query=query,
                                                      page_size=2, next_page_token=token),
                        retry=True)
                else:
                    page = await client.workflow_service.scan_workflow_executions(
                        ScanWorkflowExecutionsRequest(namespace=NAMESPACE, query=query,
                                                      page_size=2, next_page_token=token),
                        retry=True)
                pages.append([e.execution.workflow_id for e in page.executions])
                token = page.next_page_token
                if not token:
                    break
                assert len(pages) < 10, pages
            assert [len(p) for p in pages] == [2, 2, 1], (name, pages)
            if name == "list":
                assert [i for p in pages for i in p] == newest_first
            else:  # Scan promises no order
                assert sorted(i for p in pages for i in p) == sorted(ids)

        # One page when the page is larger than the result.
        whole = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace=NAMESPACE, query=query, page_size=10),
            retry=True)
        assert [e.execution.workflow_id for e in whole.executions] == newest_first
        assert whole.next_page_token == b""
    finally:
        for handle in handles:
            await handle.terminate("paging test done")


# List rows ---------------------------------------------------------------------------------


ALL_VALUES = [
    (KEYWORD, "row-keyword"), (TEXT, "some row text"), (INT, 42), (DOUBLE, 0.25),
    (BOOL, True), (DATETIME, utc("2024-02-29T13:14:15Z")), (KEYWORD_LIST, ["a", "b c"]),
]
# How a list row holds them: a json/plain payload with the attribute's type in "type"; the
# Datetime is normalised to RFC 3339 in UTC with a Z (the SDK sent "+00:00").
ALL_VALUES_RAW = {
    "VisKeyword": ("Keyword", b'"row-keyword"'),
    "VisText": ("Text", b'"some row text"'),
    "VisInt": ("Int", b"42"),
    "VisDouble": ("Double", b"0.25"),
    "VisBool": ("Bool", b"true"),
    "VisDatetime": ("Datetime", b'"2024-02-29T13:14:15Z"'),
    "VisKeywordList": ("KeywordList", b'["a","b c"]'),
}


async def test_list_row_of_a_run(client: Client, registered: None, task_queue: str):
    """A run no worker serves: its row while running (no close time, history length 0) and
    after termination, with its memo and typed search attributes, as describe shows them."""
    workflow_id = unique_id("row")
    handle = await client.start_workflow(
        VisWorkflow.run, "wait", id=workflow_id, task_queue=task_queue,
        memo={"owner": "alice", "numbers": [1, 2, 3]},
        search_attributes=attributes(*ALL_VALUES))
    [row] = await until_listed(client, f"WorkflowId = '{workflow_id}'", [workflow_id])
    assert row.id == workflow_id
    assert row.run_id == handle.result_run_id
    assert row.workflow_type == "VisWorkflow"
    assert row.task_queue == task_queue
    assert row.status == WorkflowExecutionStatus.RUNNING
    assert row.close_time is None
    assert row.history_length == 0  # not written before the run closes
    assert row.execution_time == row.start_time
    assert row.parent_id is None and row.parent_run_id is None
    assert (row.root_id, row.root_run_id) == (workflow_id, handle.result_run_id)
    assert await row.memo() == {"owner": "alice", "numbers": [1, 2, 3]}
    assert custom(row.typed_search_attributes) == dict((k.name, v) for k, v in ALL_VALUES)
    # Nothing else: no worker ran a task, so the server added no BuildIds either.
    fields = row.raw_info.search_attributes.indexed_fields
    assert {name: (dict(p.metadata)["type"].decode(), p.data) for name, p in fields.items()} \
        == ALL_VALUES_RAW
    assert {name: dict(p.metadata)["encoding"] for name, p in fields.items()} == {
        name: b"json/plain" for name in ALL_VALUES_RAW}
    raw = row.raw_info
    assert not raw.HasField("execution_duration")
    assert raw.state_transition_count == 0

    described = await handle.describe()
    assert custom(described.typed_search_attributes) == custom(row.typed_search_attributes)
    assert await described.memo() == await row.memo()
    assert described.start_time == row.start_time

    await handle.terminate("row test")
    closed = await until_row(client, workflow_id,
                             lambda r: r.status == WorkflowExecutionStatus.TERMINATED,
                             "the terminated row")
    events = await history_events(handle)
    assert types_of(events) == ["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
                                "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
                                "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"]
    assert closed.history_length == 3
    assert closed.close_time == (await handle.describe()).close_time
    # Close time less execution time (the dev server lists times in microseconds but
    # computes the duration from nanoseconds).
    raw_closed = closed.raw_info
    assert abs(ns(raw_closed.close_time) - ns(raw_closed.execution_time)
               - raw_closed.execution_duration.ToNanoseconds()) < 1000
    assert closed.start_time == row.start_time
    assert await closed.memo() == await row.memo()
    assert custom(closed.typed_search_attributes) == custom(row.typed_search_attributes)


async def test_list_rows_of_parent_and_child(client: Client, task_queue: str):
    parent_id, child_id = unique_id("parent"), unique_id("child")
    async with worker(client, task_queue):
        parent = await client.start_workflow(VisParent.run, child_id, id=parent_id,
                                             task_queue=task_queue)
        await wait_for_event(parent, E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        child = client.get_workflow_handle(child_id)
        running = {r.id: r for r in await until_listed(
            client, f"TaskQueue = '{task_queue}'", [parent_id, child_id])}
        await child.signal(VisWorkflow.finish)
        assert await parent.result() == "wait"

    child_run = (await child.describe()).run_id
    for row in (running[child_id],):
        assert (row.parent_id, row.parent_run_id) == (parent_id, parent.result_run_id)
        assert (row.root_id, row.root_run_id) == (parent_id, parent.result_run_id)
        assert row.run_id == child_run
    assert running[parent_id].parent_id is None
    assert (running[parent_id].root_id, running[parent_id].root_run_id) == (
        parent_id, parent.result_run_id)

    rows = {r.id: r for r in await eventually(
        lambda: listed(client, f"TaskQueue = '{task_queue}'"),
        lambda rows: len(rows) == 2 and all(
            r.status == WorkflowExecutionStatus.COMPLETED for r in rows),
        "both completed")}
    for workflow_id, handle in ((parent_id, parent), (child_id, child)):
        row, described = rows[workflow_id], await handle.describe()
        assert row.history_length == described.history_length
        assert row.history_length == len(await history_events(handle))
        assert row.close_time == described.close_time
        assert row.workflow_type == described.workflow_type
        assert row.task_queue == task_queue
    child_row = rows[child_id]
    assert child_row.raw_info.parent_execution.workflow_id == parent_id
    assert child_row.raw_info.parent_execution.run_id == parent.result_run_id
    assert child_row.raw_info.root_execution.workflow_id == parent_id
    assert not rows[parent_id].raw_info.HasField("parent_execution")
    # The parent's row lists first: it closed after its child.
    assert [r.id for r in await listed(client, f"TaskQueue = '{task_queue}'")] == [
        parent_id, child_id]


# Search attributes: registration --------------------------------------------------------------


async def test_list_search_attributes(client: Client, registered: None):
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=NAMESPACE))
    assert dict(response.system_attributes) == SYSTEM_ATTRIBUTES
    customs = dict(response.custom_attributes)
    assert {name: customs.get(name) for name in SUITE_ATTRIBUTES} == SUITE_ATTRIBUTES
    assert not set(customs) & set(SYSTEM_ATTRIBUTES)
    assert dict(response.storage_schema) == {}


async def test_registering_again_changes_nothing(client: Client, registered: None):
    """Adding a name that exists succeeds silently, even with another type: the type stays."""
    await add_attributes(client, SUITE_ATTRIBUTES)
    await add_attributes(client, {KEYWORD.name: T.INDEXED_VALUE_TYPE_INT})
    customs = await custom_attributes(client)
    assert {name: customs[name] for name in SUITE_ATTRIBUTES} == SUITE_ATTRIBUTES


ADD_REFUSALS = [
    ({"WorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD},
     "Search attribute WorkflowId is reserved by system."),
    ({"ExecutionStatus": T.INDEXED_VALUE_TYPE_KEYWORD},
     "Search attribute ExecutionStatus is reserved by system."),
    ({"TemporalChangeVersion": T.INDEXED_VALUE_TYPE_KEYWORD_LIST},
     "Search attribute TemporalChangeVersion is reserved by system."),
    # Any name starting with "Temporal" is reserved.
    ({"TemporalVisAnything": T.INDEXED_VALUE_TYPE_KEYWORD},
     "Search attribute TemporalVisAnything is reserved by system."),
    ({"VisBadType": 99}, "Unknown search attribute type: 99."),
    ({"VisUnspecified": T.INDEXED_VALUE_TYPE_UNSPECIFIED},
     "Unable to create search attributes: cannot have more than 0 search attribute of type "
     "Unspecified."),
    ({}, "SearchAttributes are not set on request."),
]


@pytest.mark.parametrize("attrs,message", ADD_REFUSALS,
                         ids=["system", "system-status", "system-temporal", "temporal-prefix",
                              "unknown-type", "unspecified-type", "empty"])
async def test_add_search_attributes_refused(client: Client, attrs: dict, message: str):
    before = await custom_attributes(client)
    assert await raw_error(client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=NAMESPACE, search_attributes=attrs))) == (
            INVALID, message)
    assert await custom_attributes(client) == before


async def test_add_search_attributes_namespace(client: Client):
    attrs = {"VisNoNamespace": T.INDEXED_VALUE_TYPE_KEYWORD}
    assert await raw_error(client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(search_attributes=attrs))) == (
            INVALID, "Namespace is not set on request.")
    assert await raw_error(client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="no-such-namespace", search_attributes=attrs))) \
        == (RPCStatusCode.NOT_FOUND, "Namespace no-such-namespace is not found.")
    assert "VisNoNamespace" not in await custom_attributes(client)


async def test_remove_search_attributes(client: Client, registered: None, task_queue: str):
    suffix = uuid.uuid4().hex[:8]
    keyword, number = f"VisGoneKeyword{suffix}", f"VisGoneInt{suffix}"
    await add_attributes(client, {keyword: T.INDEXED_VALUE_TYPE_KEYWORD,
                                  number: T.INDEXED_VALUE_TYPE_INT})
    try:
        customs = await custom_attributes(client)
        assert (customs[keyword], customs[number]) == (T.INDEXED_VALUE_TYPE_KEYWORD,
                                                       T.INDEXED_VALUE_TYPE_INT)
        assert (await client.count_workflows(f"{keyword} = 'x'")).count == 0  # queryable
    finally:
        await remove_attributes(client, [keyword, number])
    customs = await custom_attributes(client)
    assert keyword not in customs and number not in customs
    assert {name: customs[name] for name in SUITE_ATTRIBUTES} == SUITE_ATTRIBUTES

    # Gone from queries and from what a start may set.
    assert await raw_error(client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(namespace=NAMESPACE, query=f"{keyword} = 'x'"),
        retry=True)) == (INVALID, f"invalid query: invalid search attribute: {keyword}")
    assert await raw_error(client.start_workflow(
        VisWorkflow.run, "complete", id=unique_id(), task_queue=task_queue,
        search_attributes=attributes((SearchAttributeKey.for_keyword(keyword), "x"))),
    ) == (INVALID, f"Namespace default has no mapping defined for search attribute {keyword}")

    # Removing what is not there succeeds and changes nothing.
    await remove_attributes(client, [keyword])
    await remove_attributes(client, [f"VisNeverAdded{suffix}"])
    assert await custom_attributes(client) == customs


async def test_remove_search_attributes_refused(client: Client, registered: None):
    remove = client.operator_service.remove_search_attributes
    assert await raw_error(remove(RemoveSearchAttributesRequest(
        namespace=NAMESPACE, search_attributes=["WorkflowId"]))) == (
            INVALID, "Unable to remove non-custom search attributes: WorkflowId.")
    assert await raw_error(remove(RemoveSearchAttributesRequest(
        namespace=NAMESPACE, search_attributes=[]))) == (
            INVALID, "SearchAttributes are not set on request.")
    # A system attribute among custom ones: nothing is removed.
    assert await raw_error(remove(RemoveSearchAttributesRequest(
        namespace=NAMESPACE, search_attributes=[KEYWORD.name, "WorkflowId"]))) == (
            INVALID, "Unable to remove non-custom search attributes: WorkflowId.")
    customs = await custom_attributes(client)
    assert {name: customs[name] for name in SUITE_ATTRIBUTES} == SUITE_ATTRIBUTES


@pytest.mark.parametrize("value_type", list(LIMITS), ids=[name for _, name in LIMITS.values()])
async def test_custom_attributes_per_type_limit(client: Client, registered: None,
                                                value_type: int):
    """The namespace fills up to the type's limit; one more is refused, alone or with others
    in one request (then none of them is added)."""
    limit, type_name = LIMITS[value_type]
    refusal = (INVALID, f"Unable to create search attributes: cannot have more than {limit} "
                        f"search attribute of type {type_name}.")
    used = sum(1 for t in (await custom_attributes(client)).values() if t == value_type)
    suffix = uuid.uuid4().hex[:8]
    mine = [f"VisFill{n}x{suffix}" for n in range(limit - used)]
    try:
        for name in mine:
            await add_attributes(client, {name: value_type})
        assert await raw_error(client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=NAMESPACE, search_attributes={
                f"VisOneTooMany{suffix}": value_type}))) == refusal
        # With one free slot, a request for two is refused whole.
        await remove_attributes(client, [mine.pop()])
        assert await raw_error(client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=NAMESPACE, search_attributes={
                f"VisPairA{suffix}": value_type, f"VisPairB{suffix}": value_type}))) == refusal
        customs = await custom_attributes(client)
        assert f"VisPairA{suffix}" not in customs and f"VisPairB{suffix}" not in customs
        assert sum(1 for t in customs.values() if t == value_type) == limit - 1
    finally:
        if mine:
            await remove_attributes(client, mine)
    assert sum(1 for t in (await custom_attributes(client)).values() if t == value_type) == used


# Search attributes: values -------------------------------------------------------------------


START_REFUSALS = [
    (SearchAttributeKey.for_keyword("VisNotRegistered"), "x",
     "Namespace default has no mapping defined for search attribute VisNotRegistered"),
    (SearchAttributeKey.for_keyword("VisInt"), "abc",
     "invalid value for search attribute VisInt of type Int: abc"),
    (SearchAttributeKey.for_keyword("WorkflowId"), "x",
     "WorkflowId attribute can't be set in SearchAttributes"),
    (SearchAttributeKey.for_keyword("ExecutionStatus"), "Running",
     "ExecutionStatus attribute can't be set in SearchAttributes"),
    # 2 KB per value, counted on the payload's data: the JSON text with its quotes.
    (KEYWORD, "k" * 2047, "search attribute VisKeyword value size 2049 exceeds size limit 2048"),
    (TEXT, "t" * 3000, "search attribute VisText value size 3002 exceeds size limit 2048"),
    (KEYWORD_LIST, ["l" * 1100, "m" * 1100],
     "search attribute VisKeywordList value size 2207 exceeds size limit 2048"),
]


@pytest.mark.parametrize("key,value,message", START_REFUSALS,
                         ids=["unregistered", "wrong-type", "system", "system-status",
                              "keyword-too-large", "text-too-large", "list-too-large"])
async def test_start_with_bad_search_attribute(client: Client, registered: None,
                                               task_queue: str, key, value, message: str):
    workflow_id = unique_id("badsa")
    assert await raw_error(client.start_workflow(
        VisWorkflow.run, "complete", id=workflow_id, task_queue=task_queue,
        search_attributes=attributes((key, value)))) == (INVALID, message)
    assert await raw_error(client.get_workflow_handle(workflow_id).describe()) == (
        RPCStatusCode.NOT_FOUND, f"workflow not found for ID: {workflow_id}")


async def test_largest_value_is_accepted(client: Client, registered: None, task_queue: str):
    workflow_id = unique_id("bigsa")
    value = uuid.uuid4().hex.ljust(2046, "k")  # 2048 bytes of JSON
    handle = await client.start_workflow(
        VisWorkflow.run, "wait", id=workflow_id, task_queue=task_queue,
        search_attributes=attributes((KEYWORD, value)))
    try:
        [row] = await until_listed(client, f"VisKeyword = '{value}'", [workflow_id])
        assert custom(row.typed_search_attributes) == {"VisKeyword": value}
    finally:
        await handle.terminate()


UPSERT_REFUSALS = [
    # An unregistered name fails the workflow task; the worker retries it, the run goes on.
    ("VisNotRegistered", ["x"], False,
     "BadSearchAttributes: Namespace default has no mapping defined for search attribute "
     "VisNotRegistered"),
    # A value over the size limit fails the task and the history service terminates the run,
    # with the failure's message as the reason. (The untyped form sends a list: 2047 "k"s
    # are 2051 bytes of JSON.)
    ("VisKeyword", ["k" * 2047], True,
     "BadSearchAttributes: search attribute VisKeyword value size 2051 exceeds size limit "
     "2048"),
]


@pytest.mark.parametrize("name,value,terminates,message", UPSERT_REFUSALS,
                         ids=["unregistered", "too-large"])
async def test_upsert_refused(client: Client, registered: None, task_queue: str, name: str,
                              value: Any, terminates: bool, message: str):
    workflow_id = unique_id("badupsert")
    async with worker(client, task_queue):
        handle = await client.start_workflow(UpsertAtStart.run, args=[name, value],
                                             id=workflow_id, task_queue=task_queue)
        events = await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert types_of(events)[:4] == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_FAILED"]
    failed = events[3].workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
    assert failed.failure.message == message
    assert failed.failure.HasField("server_failure_info")
    if terminates:
        events = await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
        assert types_of(events) == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            "EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_FAILED",
            "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"]
        terminated = events[4].workflow_execution_terminated_event_attributes
        assert (terminated.reason, terminated.identity) == (message, "history-service")
        assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    else:
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("upsert test done")
    assert custom((await handle.describe()).typed_search_attributes) == {}


async def step(handle, changes: list[list[Any]]) -> None:
    """Signals one step to an UpsertingWorkflow and waits until it has applied it."""
    done = await handle.query(UpsertingWorkflow.steps_done)
    await handle.signal(UpsertingWorkflow.step, changes)
    await eventually(lambda: handle.query(UpsertingWorkflow.steps_done),
                     lambda n: n == done + 1, "the step applied")


async def test_upsert_search_attributes(client: Client, registered: None, task_queue: str):
    """Typed upserts set and unset; the untyped dict form still works (a list value sets, an
    empty list unsets). Describe shows each change at once, list rows and filters soon."""
    workflow_id, tag = unique_id("upsert"), uuid.uuid4().hex
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            UpsertingWorkflow.run, id=workflow_id, task_queue=task_queue,
            search_attributes=attributes((KEYWORD, f"initial-{tag}"), (INT, 1)))
        start_values = {"VisKeyword": f"initial-{tag}", "VisInt": 1}
        assert custom((await handle.describe()).typed_search_attributes) == start_values
        await until_listed(client, f"VisKeyword = 'initial-{tag}'", [workflow_id])

        await step(handle, [
            ["typed", "VisKeyword", f"changed-{tag}"], ["typed", "VisInt", None],
            ["typed", "VisBool", True], ["typed", "VisDatetime", "2025-02-03T04:05:06+00:00"],
            ["typed", "VisKeywordList", ["x", "y"]], ["typed", "VisDouble", 3.25],
            ["typed", "VisText", "hello upsert world"]])
        typed_values = {
            "VisKeyword": f"changed-{tag}", "VisBool": True,
            "VisDatetime": utc("2025-02-03T04:05:06Z"), "VisKeywordList": ["x", "y"],
            "VisDouble": 3.25, "VisText": "hello upsert world"}
        assert custom((await handle.describe()).typed_search_attributes) == typed_values
        row = await until_row(client, workflow_id,
                              lambda r: custom(r.typed_search_attributes) == typed_values,
                              "the typed upsert in the list row")
        assert row.status == WorkflowExecutionStatus.RUNNING
        await until_listed(client, f"VisKeyword = 'changed-{tag}'", [workflow_id])
        await until_listed(client, f"VisKeyword = 'initial-{tag}'", [])
        await until_listed(client, f"WorkflowId = '{workflow_id}' AND VisInt IS NULL AND "
                                   f"VisText = 'upsert' AND VisKeywordList = 'y'", [workflow_id])

        await step(handle, [["untyped", "VisInt", [7]], ["untyped", "VisKeyword", []]])
        untyped_values = {**typed_values, "VisInt": 7}
        del untyped_values["VisKeyword"]
        assert custom((await handle.describe()).typed_search_attributes) == untyped_values
        await until_row(client, workflow_id,
                        lambda r: custom(r.typed_search_attributes) == untyped_values,
                        "the untyped upsert in the list row")
        await until_listed(client, f"WorkflowId = '{workflow_id}' AND VisInt = 7 AND "
                                   f"VisKeyword IS NULL", [workflow_id])

        await handle.signal(UpsertingWorkflow.finish)
        seen = await handle.result()
    # What workflow.info() showed the workflow after each step.
    assert seen == [
        {"typed": ["VisBool", "VisDatetime", "VisDouble", "VisKeyword", "VisKeywordList",
                   "VisText"], "memo": []},
        {"typed": ["VisBool", "VisDatetime", "VisDouble", "VisInt", "VisKeywordList",
                   "VisText"], "memo": []},
    ]
    closed = await until_row(client, workflow_id,
                             lambda r: r.status == WorkflowExecutionStatus.COMPLETED,
                             "the completed row")
    assert custom(closed.typed_search_attributes) == untyped_values
    events = await history_events(handle)
    upserts = [e.upsert_workflow_search_attributes_event_attributes for e in events
               if e.event_type == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    assert [sorted(u.search_attributes.indexed_fields) for u in upserts] == [
        sorted(["VisKeyword", "VisInt", "VisBool", "VisDatetime", "VisKeywordList", "VisDouble",
                "VisText"]),
        ["VisInt"], ["VisKeyword"]]


async def test_upsert_memo(client: Client, registered: None, task_queue: str):
    workflow_id = unique_id("memo")
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            UpsertingWorkflow.run, id=workflow_id, task_queue=task_queue,
            memo={"owner": "alice", "keep": 1})
        row = await until_row(client, workflow_id, lambda r: True, "the row")
        assert await row.memo() == {"owner": "alice", "keep": 1}

        await step(handle, [["memo", "owner", "bob"], ["memo", "keep", None],
                            ["memo", "new", {"a": [1, 2]}]])
        expected = {"owner": "bob", "new": {"a": [1, 2]}}
        assert await (await handle.describe()).memo() == expected
        memos = []

        async def listed_memo():
            rows = await listed(client, f"WorkflowId = '{workflow_id}'")
            memos.append(await rows[0].memo())
            return memos[-1]
        await eventually(listed_memo, lambda memo: memo == expected, "the upserted memo")
        await handle.signal(UpsertingWorkflow.finish)
        assert await handle.result() == [{"typed": [], "memo": ["new", "owner"]}]
    events = await history_events(handle)
    modified = [e for e in events if e.event_type == E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED]
    assert [sorted(e.workflow_properties_modified_event_attributes.upserted_memo.fields)
            for e in modified] == [["owner"], ["keep"], ["new"]]
    closed = await until_row(client, workflow_id,
                             lambda r: r.status == WorkflowExecutionStatus.COMPLETED,
                             "the completed row")
    assert await closed.memo() == expected


async def test_search_attributes_carried_by_continue_as_new(client: Client, registered: None,
                                                            task_queue: str):
    """The new run keeps the start's search attributes, those the first run upserted, and the
    memo; both runs list, the first as ContinuedAsNew."""
    workflow_id = unique_id("carry")
    expected = {"VisKeyword": "carried", "VisInt": 5, "VisBool": True}
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            ContinuingWorkflow.run, 0, id=workflow_id, task_queue=task_queue, memo={"m": "x"},
            search_attributes=attributes((KEYWORD, "carried"), (INT, 5)))
        rows = await eventually(
            lambda: listed(client, f"WorkflowId = '{workflow_id}'"),
            lambda rows: len(rows) == 2 and rows[1].status
            == WorkflowExecutionStatus.CONTINUED_AS_NEW, "both runs")
        new, first = rows
        assert first.run_id == handle.result_run_id
        assert new.status == WorkflowExecutionStatus.RUNNING
        assert new.run_id != first.run_id
        for row in rows:
            assert custom(row.typed_search_attributes) == expected
            assert await row.memo() == {"m": "x"}
        assert first.history_length == 6
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.run_id == new.run_id
        assert custom(described.typed_search_attributes) == expected
        assert await described.memo() == {"m": "x"}
        assert [r.run_id for r in await listed(
            client, f"WorkflowId = '{workflow_id}' AND ExecutionStatus = 'ContinuedAsNew'")] \
            == [first.run_id]
        assert [r.run_id for r in await listed(
            client, f"WorkflowId = '{workflow_id}' AND VisBool = true AND VisInt = 5 AND "
                    f"ExecutionStatus = 'Running'")] == [new.run_id]
        await client.get_workflow_handle(workflow_id).signal(ContinuingWorkflow.finish)
        assert await client.get_workflow_handle(workflow_id).result() == 1


# The CLI -----------------------------------------------------------------------------------


async def test_cli_workflow_list_and_count(server, client: Client, registered: None):
    pop = await population(server, client)
    where = f"TaskQueue = '{pop.task_queue}'"

    code, out, err = await run_cli(server, "workflow", "list", "--query",
                                   f"{where} AND VisKeyword STARTS_WITH 'alph'", "-o", "json")
    assert (code, err) == (0, "")
    listed_json = json.loads(out)
    assert sorted((pop.name(r["execution"]["workflowId"]), r["status"], r["type"]["name"])
                  for r in listed_json) == [
        ("w1", "WORKFLOW_EXECUTION_STATUS_COMPLETED", "VisWorkflow"),
        ("w3", "WORKFLOW_EXECUTION_STATUS_FAILED", "VisWorkflow")]
    w1 = next(r for r in listed_json if r["execution"]["workflowId"] == pop.id("w1"))
    assert w1["execution"]["runId"] == pop.rows["w1"].run_id
    assert w1["taskQueue"] == pop.task_queue
    assert w1["historyLength"] == "5"
    fields = w1["searchAttributes"]["indexedFields"]
    assert base64.b64decode(fields["VisKeyword"]["data"]) == b'"alpha"'
    assert base64.b64decode(fields["VisKeywordList"]["data"]) == b'["red","green"]'

    code, out, err = await run_cli(server, "workflow", "list", "--query",
                                   f"{where} AND ExecutionStatus = 'Running'")
    assert (code, err) == (0, "")
    lines = out.strip().splitlines()
    assert lines[0].split() == ["Status", "WorkflowId", "Type", "StartTime"]
    assert sorted(tuple(line.split()[:3]) for line in lines[1:]) == sorted([
        ("Running", pop.id("w2"), "VisWorkflow"), ("Running", pop.id("w7"), "VisWorkflow"),
        ("Running", pop.id("p"), "VisParent"), ("Running", pop.id("c"), "VisWorkflow")])

    assert await run_cli(server, "workflow", "count", "--query", where) == (0, "Total: 11\n", "")
    code, out, err = await run_cli(server, "workflow", "count", "--query",
                                   f"{where} GROUP BY ExecutionStatus")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Total: 11"
    assert sorted(lines[1:]) == sorted([
        "Group total: 4, values: Running", "Group total: 3, values: Completed",
        "Group total: 1, values: Failed", "Group total: 1, values: Terminated",
        "Group total: 1, values: Canceled", "Group total: 1, values: TimedOut"])
    code, out, err = await run_cli(server, "workflow", "count", "--query",
                                   f"{where} AND ExecutionStatus != 'Running' GROUP BY "
                                   f"ExecutionStatus", "-o", "json")
    assert (code, err) == (0, "")
    counted = json.loads(out)
    assert counted["count"] == "7"
    assert sorted((g["groupValues"], g["count"]) for g in counted["groups"]) == sorted([
        (["Completed"], "3"), (["Failed"], "1"), (["Terminated"], "1"), (["Canceled"], "1"),
        (["TimedOut"], "1")])

    assert await run_cli(server, "workflow", "list", "--query", "Bogus = 1") == (
        1, "", "Error: failed listing workflows: invalid query: invalid search attribute: "
               "Bogus\n")
    assert await run_cli(server, "workflow", "count", "--query", "Bogus = 1") == (
        1, "", "Error: invalid query: invalid search attribute: Bogus\n")


async def test_cli_workflow_describe_and_show(server, client: Client, registered: None,
                                              task_queue: str):
    workflow_id = unique_id("clidesc")
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            VisWorkflow.run, "complete", id=workflow_id, task_queue=task_queue,
            memo={"owner": "cli"}, search_attributes=attributes((KEYWORD, "cli-kw"), (INT, 3)))
        await handle.result()

    code, out, err = await run_cli(server, "workflow", "describe", "-w", workflow_id, "-o",
                                   "json")
    assert (code, err) == (0, "")
    info = json.loads(out)["workflowExecutionInfo"]
    assert info["execution"] == {"workflowId": workflow_id, "runId": handle.result_run_id}
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert info["historyLength"] == "5"
    assert info["memo"] == {"fields": {"owner": "cli"}}  # the CLI decodes memo payloads
    fields = info["searchAttributes"]["indexedFields"]
    assert {name: base64.b64decode(f["data"]) for name, f in fields.items()
            if name not in SERVER_ADDED} == {"VisKeyword": b'"cli-kw"', "VisInt": b"3"}
    assert base64.b64decode(fields["VisKeyword"]["metadata"]["type"]) == b"Keyword"

    code, out, err = await run_cli(server, "workflow", "describe", "-w", workflow_id)
    assert (code, err) == (0, "")
    assert f"  WorkflowId            {workflow_id}\n" in out
    assert "  Type                  VisWorkflow\n" in out
    assert "VisKeyword:" in out and "VisInt:" in out

    code, out, err = await run_cli(server, "workflow", "show", "-w", workflow_id, "-o", "json")
    assert (code, err) == (0, "")
    assert [e["eventType"] for e in json.loads(out)["events"]] == types_of(
        await history_events(handle))
    code, out, err = await run_cli(server, "workflow", "show", "-w", workflow_id)
    assert (code, err) == (0, "")
    assert [line.split()[-1] for line in out.split("Progress:\n")[1].split("\n\n")[0]
            .strip().splitlines()[1:]] == [
        "WorkflowExecutionStarted", "WorkflowTaskScheduled", "WorkflowTaskStarted",
        "WorkflowTaskCompleted", "WorkflowExecutionCompleted"]
    assert "  Result          \"complete\"\n" in out


async def test_cli_search_attributes(server, client: Client, registered: None):
    name = f"VisCli{uuid.uuid4().hex[:8]}"
    assert await run_cli(server, "operator", "search-attribute", "create", "--name", name,
                         "--type", "Keyword") == (0, "Search attributes have been added\n", "")
    try:
        assert (await custom_attributes(client))[name] == T.INDEXED_VALUE_TYPE_KEYWORD
        code, out, err = await run_cli(server, "operator", "search-attribute", "list")
        assert (code, err) == (0, "")
        rows = dict(line.strip().rsplit(None, 1) for line in out.strip().splitlines()[1:])
        assert rows[name] == "Keyword"
        assert {n: rows[n] for n in SUITE_ATTRIBUTES} == {
            "VisKeyword": "Keyword", "VisText": "Text", "VisInt": "Int", "VisDouble": "Double",
            "VisBool": "Bool", "VisDatetime": "Datetime", "VisKeywordList": "KeywordList"}
        assert rows["WorkflowId"] == "Keyword" and rows["StartTime"] == "Datetime"

        code, out, err = await run_cli(server, "operator", "search-attribute", "list",
                                       "-o", "json")
        assert (code, err) == (0, "")
        listing = json.loads(out)
        assert listing["customAttributes"][name] == "INDEXED_VALUE_TYPE_KEYWORD"
        assert listing["systemAttributes"] == {
            n: T.Name(t) for n, t in SYSTEM_ATTRIBUTES.items()}

        assert await run_cli(server, "operator", "search-attribute", "create", "--name",
                             "WorkflowId", "--type", "Keyword") == (
            1, "", "Error: unable to add search attributes: Search attribute WorkflowId is "
                   "reserved by system.\n")
    finally:
        code, out, err = await run_cli(server, "operator", "search-attribute", "remove",
                                       "--name", name, "--yes")
    assert (code, out, err) == (
        0, f"You are about to remove search attribute [\"{name}\"]? y/N yes\n"
           f"Search attributes have been removed\n", "")
    assert name not in await custom_attributes(client)
    assert await run_cli(server, "operator", "search-attribute", "remove", "--name",
                         "WorkflowId", "--yes") == (
        1, "You are about to remove search attribute [\"WorkflowId\"]? y/N yes\n",
        "Error: unable to remove search attributes: Unable to remove non-custom search "
        "attributes: WorkflowId.\n")


# Task queues ---------------------------------------------------------------------------------


def assert_recent(stamp: Timestamp, within_s: float = 30) -> None:
    when = stamp.ToDatetime(tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    assert now - timedelta(seconds=within_s) <= when <= now + timedelta(seconds=1), when


async def describe_queue(client: Client, name: str, queue_type: int, **options: Any):
    return await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=NAMESPACE, task_queue=TaskQueue(name=name), task_queue_type=queue_type,
        **options), retry=True)


async def test_describe_task_queue_pollers(client: Client, task_queue: str):
    """A worker's workflow and activity pollers, with its identity, the SDK's build id, the
    default rate (100,000 per second) and a recent last access time."""
    identity = f"vis-poller-{uuid.uuid4()}"
    async with worker(client, task_queue, identity=identity):
        for queue_type in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                           TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            described = await eventually(
                lambda: describe_queue(client, task_queue, queue_type),
                lambda d: len(d.pollers) > 0, f"a {TaskQueueType.Name(queue_type)} poller")
            [poller] = described.pollers
            assert poller.identity == identity
            assert poller.rate_per_second == 100000
            # Workers name their build id only to a server that supports build-id versioning
            # (Temporal's does; Almanac does not advertise it).
            if (await client.workflow_service.get_system_info(
                    GetSystemInfoRequest())).capabilities.build_id_based_versioning:
                assert poller.worker_version_capabilities.build_id == load_default_build_id()
            else:
                assert poller.worker_version_capabilities.build_id == ""
            assert_recent(poller.last_access_time)
    nobody = await describe_queue(client, f"tq-{uuid.uuid4()}",
                                  TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    assert list(nobody.pollers) == []


async def test_describe_task_queue_backlog(server, client: Client, task_queue: str):
    """Three activities scheduled on a queue nobody polls: a backlog of 3 there; the
    workflow queue, served, has none."""
    activity_queue = f"aq-{uuid.uuid4()}"
    async with worker(client, task_queue):
        handle = await client.start_workflow(PendingActivitiesWorkflow.run,
                                             args=[3, activity_queue], id=unique_id("backlog"),
                                             task_queue=task_queue)
        try:
            await eventually(
                lambda: history_events(handle),
                lambda events: types_of(events).count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") == 3,
                "three activities scheduled")
            stats = await eventually(
                lambda: describe_queue(client, activity_queue,
                                       TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, report_stats=True),
                lambda d: d.stats.approximate_backlog_count == 3, "a backlog of 3")
            assert list(stats.pollers) == []
            assert stats.stats.approximate_backlog_age.ToTimedelta() > timedelta(0)
            served = await describe_queue(client, task_queue,
                                          TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                                          report_stats=True)
            assert served.stats.approximate_backlog_count == 0

            # The CLI asks in the enhanced mode and lists both types' statistics.
            code, out, err = await run_cli(server, "task-queue", "describe", "--task-queue",
                                           activity_queue, "-o", "json")
            assert (code, err) == (0, "")
            described = json.loads(out)
            assert described.get("pollers") in (None, [])
            assert sorted((s["taskQueueType"], s["approximateBacklogCount"])
                          for s in described["stats"]) == [("activity", 3), ("workflow", 0)]
        finally:
            await handle.terminate("backlog test done")


async def test_cli_task_queue_describe(server, client: Client, task_queue: str):
    identity = f"vis-cli-poller-{uuid.uuid4()}"
    async with worker(client, task_queue, identity=identity):
        await eventually(
            lambda: describe_queue(client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
            lambda d: len(d.pollers) > 0, "the activity poller")
        await eventually(
            lambda: describe_queue(client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            lambda d: len(d.pollers) > 0, "the workflow poller")
        code, out, err = await run_cli(server, "task-queue", "describe", "--task-queue",
                                       task_queue, "-o", "json")
        assert (code, err) == (0, "")
        described = json.loads(out)
        pollers = sorted(described["pollers"], key=lambda p: p["taskQueueType"])
        for poller in pollers:
            assert_recent_text(poller.pop("lastAccessTime"))
        assert pollers == [
            {"buildId": "UNVERSIONED", "taskQueueType": "activity", "identity": identity,
             "ratePerSecond": 100000},
            {"buildId": "UNVERSIONED", "taskQueueType": "workflow", "identity": identity,
             "ratePerSecond": 100000}]

        code, out, err = await run_cli(server, "task-queue", "describe", "--task-queue",
                                       task_queue)
        assert (code, err) == (0, "")
        poller_lines = out.split("Pollers:\n")[1].strip().splitlines()
        assert poller_lines[0].split() == ["BuildID", "TaskQueueType", "Identity",
                                           "LastAccessTime", "RatePerSecond"]
        assert sorted((line.split()[1], line.split()[2], line.split()[-1])
                      for line in poller_lines[1:]) == [
            ("activity", identity, "100000"), ("workflow", identity, "100000")]

        code, out, err = await run_cli(server, "task-queue", "describe", "--task-queue",
                                       task_queue, "--legacy-mode")
        assert (code, err) == (0, "")
        legacy_lines = out.split("Pollers:\n")[1].strip().splitlines()
        assert legacy_lines[0].split() == ["Identity", "LastAccessTime", "RatePerSecond"]
        assert legacy_lines[1].split()[0] == identity


def assert_recent_text(text: str) -> None:
    whole, _, fraction = text.rstrip("Z").partition(".")
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(whole).replace(tzinfo=timezone.utc))
    assert_recent(stamp)


# Reverse history -------------------------------------------------------------------------


async def reverse_pages(client: Client, workflow_id: str, run_id: str,
                        page_size: int) -> list[list[int]]:
    pages, token = [], b""
    while True:
        response = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=NAMESPACE, execution=ApiExecution(workflow_id=workflow_id,
                                                            run_id=run_id),
                maximum_page_size=page_size, next_page_token=token), retry=True)
        pages.append([e.event_id for e in response.history.events])
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 100


async def test_history_reverse(client: Client, task_queue: str):
    """Newest event first; pages of at least maximum_page_size events (the server pages by
    event batches) but the last; together the forward history reversed."""
    workflow_id = unique_id("reverse")
    async with worker(client, task_queue):
        handle = await client.start_workflow(UpsertingWorkflow.run, id=workflow_id,
                                             task_queue=task_queue)
        for n in range(4):
            await step(handle, [["memo", "n", n]])
        running_forward = [e.event_id for e in await history_events(handle)]
        running = await reverse_pages(client, workflow_id, handle.result_run_id, 3)
        assert [i for page in running for i in page] == running_forward[::-1]
        await handle.signal(UpsertingWorkflow.finish)
        await handle.result()

    forward = await history_events(handle)
    ids = [e.event_id for e in forward]
    assert ids == list(range(1, len(ids) + 1))
    for page_size in (0, 1, 4, 1000):
        for run_id in (handle.result_run_id, ""):
            pages = await reverse_pages(client, workflow_id, run_id, page_size)
            assert [i for page in pages for i in page] == ids[::-1], (page_size, pages)
            assert all(pages), pages
            if page_size:
                assert all(len(page) >= page_size for page in pages[:-1]), (page_size, pages)
            if page_size in (0, 1000):
                assert len(pages) == 1
            if page_size == 1:
                assert len(pages) > 1

    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=NAMESPACE, execution=ApiExecution(workflow_id=workflow_id)), retry=True)
    assert list(response.history.events) == forward[::-1]


async def test_history_reverse_refused(client: Client, task_queue: str):
    workflow_id = unique_id("reverse")
    handle = await client.start_workflow(VisWorkflow.run, "wait", id=workflow_id,
                                         task_queue=task_queue)
    other_run = str(uuid.uuid4())

    async def refusal(**fields) -> tuple[RPCStatusCode, str]:
        return await raw_error(client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(**{"namespace": NAMESPACE, **fields})))
    try:
        assert await refusal(execution=ApiExecution(workflow_id=f"no-{workflow_id}")) == (
            RPCStatusCode.NOT_FOUND, f"workflow not found for ID: no-{workflow_id}")
        assert await refusal(execution=ApiExecution(workflow_id=workflow_id,
                                                    run_id=other_run)) == (
            RPCStatusCode.NOT_FOUND, f"workflow execution not found for workflow ID "
                                     f"\"{workflow_id}\" and run ID \"{other_run}\"")
        assert await refusal(execution=ApiExecution(workflow_id=workflow_id,
                                                    run_id="xyz")) == (
            INVALID, "Invalid RunId.")
        assert await refusal(execution=ApiExecution()) == (
            INVALID, "WorkflowId is not set on request.")
        assert await refusal() == (INVALID, "Execution is not set on request.")
        assert await refusal(execution=ApiExecution(workflow_id=workflow_id),
                             next_page_token=b"junk") == (INVALID, "Invalid NextPageToken.")
        assert await refusal(namespace="no-such-namespace",
                             execution=ApiExecution(workflow_id=workflow_id)) == (
            RPCStatusCode.NOT_FOUND, "Namespace no-such-namespace is not found.")
    finally:
        await handle.terminate()
