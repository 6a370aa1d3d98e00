"""Small SDK-level helpers shared by the test modules."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from activities import ALL_ACTIVITIES
from workflows import ALL_WORKFLOWS

POLL_INTERVAL_S = 0.1


def unique_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def new_worker(
    client: Client, task_queue: str, activities: list[Any] | None = None, **options: Any
) -> Worker:
    """A worker for every test workflow and activity (plus `activities`), on `task_queue`."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        activities=[*ALL_ACTIVITIES, *(activities or [])],
        **options,
    )


def pinned(client: Client, handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    """A handle on exactly the run `handle` started.

    A handle returned by start_workflow has no run id of its own: describe, history and
    terminate through it address whichever run of the workflow id is the latest.
    """
    return client.get_workflow_handle(handle.id, run_id=handle.result_run_id)


async def history_events(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[EventType.ValueType]:
    return [event.event_type for event in await history_events(handle)]


def type_names(types: list[EventType.ValueType]) -> list[str]:
    """Event types as names, so that failed assertions read well."""
    return [EventType.Name(t) for t in types]


def types_of(events: list[HistoryEvent]) -> list[str]:
    """The events' types as names."""
    return type_names([e.event_type for e in events])


def of_type(events: list[HistoryEvent], event_type: EventType.ValueType) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]


def decode(client: Client, payloads: Any) -> list[Any]:
    """A Payloads message's values, through the client's data converter."""
    return [client.data_converter.payload_converter.from_payload(p) for p in payloads.payloads]


async def wait_for_event(
    handle: WorkflowHandle[Any, Any], event_type: EventType.ValueType, within_s: float = 20
) -> list[HistoryEvent]:
    """Polls the history until it holds an event of `event_type`; returns that history."""
    deadline = time.monotonic() + within_s
    while True:
        events = await history_events(handle)
        if any(event.event_type == event_type for event in events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no {EventType.Name(event_type)} within {within_s:g} s; history: "
                f"{type_names([e.event_type for e in events])}"
            )
        await asyncio.sleep(POLL_INTERVAL_S)


async def wait_for_status(
    handle: WorkflowHandle[Any, Any],
    status: WorkflowExecutionStatus,
    within_s: float = 20,
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        observed = (await handle.describe()).status
        if observed == status:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"status is {observed}, not {status}, after {within_s:g} s")
        await asyncio.sleep(POLL_INTERVAL_S)


async def bounded(calls, limit: int = 20) -> list:
    """Awaits the coroutines `calls` with at most `limit` at a time; their results, in order."""
    slots = asyncio.Semaphore(limit)

    async def one(call):
        async with slots:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def run_cli(server: Any, *args: str) -> tuple[int, str, str]:
    """Runs the `temporal` CLI against `server`; its exit code, stdout and stderr."""
    from test_process import temporal_cli  # not at import time: test_process imports helpers

    process = await asyncio.create_subprocess_exec(
        temporal_cli(), *args, "--address", server.address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()
