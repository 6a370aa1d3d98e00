"""Failure is normal: activity retries and timeouts, heartbeats, asynchronous completion,
workflow timeouts and retries, as the Python SDK feature guide describes them."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, RetryState
from temporalio.client import AsyncActivityCancelledError, Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError as TemporalTimeoutError,
    TimeoutType,
)
from temporalio.worker import Worker

from temporalio.service import RPCError, RPCStatusCode

from helpers import history_events, type_names, unique_id, wait_for_event

# Activities ------------------------------------------------------------------------------

ATTEMPT_TIMES: dict[str, list[float]] = {}


@activity.defn
async def flaky(key: str, succeed_on: int) -> int:
    """Fails with a retryable error until attempt `succeed_on`; records when each ran."""
    ATTEMPT_TIMES.setdefault(key, []).append(time.monotonic())
    attempt = activity.info().attempt
    if attempt < succeed_on:
        raise ApplicationError(f"attempt {attempt} fails", type="Flaky")
    return attempt


@activity.defn
async def always_fails(error_type: str) -> None:
    raise ApplicationError(f"failing with {error_type}", type=error_type)


@activity.defn
async def delayed_retry(key: str) -> int:
    ATTEMPT_TIMES.setdefault(key, []).append(time.monotonic())
    if activity.info().attempt == 1:
        raise ApplicationError("come back later", next_retry_delay=timedelta(seconds=1.5))
    return activity.info().attempt


@activity.defn
async def slow_first_attempt(seconds: float) -> int:
    if activity.info().attempt == 1:
        await asyncio.sleep(seconds)
    return activity.info().attempt


@activity.defn
async def sleeps(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@activity.defn
async def heartbeat_then_stall(key: str) -> list:
    """Attempt 1 heartbeats progress, then stops heartbeating; attempt 2 resumes from it."""
    info = activity.info()
    if info.attempt == 1:
        activity.heartbeat("progress-7")
        await asyncio.sleep(5)  # past the heartbeat timeout
        return ["unreachable"]
    return [info.attempt, *info.heartbeat_details]


CANCELS_SEEN: list[str] = []


@activity.defn
async def heartbeat_until_cancelled() -> str:
    while True:
        activity.heartbeat("alive")
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            # The SDK raises this once a heartbeat's response says cancellation was requested.
            CANCELS_SEEN.append(activity.info().workflow_id)
            raise


@activity.defn
async def completes_later() -> str:
    TOKENS[activity.info().activity_id] = (activity.info().task_token, activity.info().workflow_run_id)
    activity.raise_complete_async()


TOKENS: dict[str, tuple[bytes, str]] = {}


async def token_of(activity_id: str, within_s: float = 10) -> tuple[bytes, str]:
    """The task token and run id that `completes_later` recorded for `activity_id`."""
    deadline = time.monotonic() + within_s
    while activity_id not in TOKENS:
        assert time.monotonic() < deadline, f"activity {activity_id} never started"
        await asyncio.sleep(0.05)
    return TOKENS[activity_id]

# Workflows -------------------------------------------------------------------------------


@workflow.defn
class CallActivity:
    """Runs one named activity with the options the test passes, and reports the outcome."""

    @workflow.run
    async def run(self, spec: dict) -> dict:
        policy = spec.get("retry")
        try:
            result = await workflow.execute_activity(
                spec["activity"],
                args=spec.get("args", []),
                task_queue=spec.get("activity_queue"),
                activity_id=spec.get("activity_id"),
                schedule_to_close_timeout=_secs(spec.get("schedule_to_close")),
                schedule_to_start_timeout=_secs(spec.get("schedule_to_start")),
                start_to_close_timeout=_secs(spec.get("start_to_close")),
                heartbeat_timeout=_secs(spec.get("heartbeat")),
                retry_policy=RetryPolicy(**_policy(policy)) if policy is not None else None,
            )
            return {"result": result}
        except ActivityError as err:
            cause = err.cause
            out = {"retry_state": int(err.retry_state or 0), "cause": type(cause).__name__,
                   "message": str(cause)}
            if isinstance(cause, ApplicationError):
                out["type"] = cause.type
            if isinstance(cause, TemporalTimeoutError):
                out["timeout_type"] = int(cause.type or 0)
            return out


def _secs(value):
    return None if value is None else timedelta(seconds=value)


def _policy(p: dict) -> dict:
    out = dict(p)
    for key in ("initial_interval", "maximum_interval"):
        if key in out:
            out[key] = timedelta(seconds=out[key])
    return out


@workflow.defn
class CancelActivity:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            heartbeat_until_cancelled,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=5),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await asyncio.sleep(1)
        handle.cancel()
        try:
            return await handle
        except ActivityError as err:
            return f"cancelled: {type(err.cause).__name__}"


@workflow.defn
class RetriedWorkflow:
    @workflow.run
    async def run(self, succeed_on: int) -> dict:
        info = workflow.info()
        if info.attempt < succeed_on:
            raise ApplicationError(f"workflow attempt {info.attempt} fails")
        return {"attempt": info.attempt, "run_id": info.run_id,
                "first_run_id": info.first_execution_run_id}


@workflow.defn
class SleepingWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"


ACTIVITIES = [flaky, always_fails, delayed_retry, slow_first_attempt, sleeps, heartbeat_then_stall,
              heartbeat_until_cancelled, completes_later]
WORKFLOWS = [CallActivity, CancelActivity, RetriedWorkflow, SleepingWorkflow]


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES)


async def call(client: Client, task_queue: str, **spec) -> tuple[dict, list]:
    handle = await client.start_workflow(CallActivity.run, spec, id=unique_id("call"),
                                         task_queue=task_queue)
    result = await handle.result()
    return result, await history_events(handle)


def activity_events(events) -> list[str]:
    return [n for n in type_names([e.event_type for e in events]) if "ACTIVITY" in n]


# Activity retries ------------------------------------------------------------------------


async def test_activity_retries_until_success_leaving_only_the_last_attempt(client, task_queue):
    key = uuid.uuid4().hex
    async with worker(client, task_queue):
        result, events = await call(client, task_queue, activity="flaky", args=[key, 3],
                                    start_to_close=10,
                                    retry={"initial_interval": 0.2, "backoff_coefficient": 2.0})
    assert result == {"result": 3}
    assert activity_events(events) == ["EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
                                       "EVENT_TYPE_ACTIVITY_TASK_STARTED",
                                       "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"]
    started = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started.activity_task_started_event_attributes.attempt == 3
    assert started.activity_task_started_event_attributes.last_failure.message == "attempt 2 fails"
    gaps = [b - a for a, b in zip(ATTEMPT_TIMES[key], ATTEMPT_TIMES[key][1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps  # initial interval, then doubled


async def test_default_retry_policy_backs_off_one_then_two_seconds(client, task_queue):
    key = uuid.uuid4().hex
    async with worker(client, task_queue):
        result, _ = await call(client, task_queue, activity="flaky", args=[key, 3], start_to_close=10)
    assert result == {"result": 3}
    gaps = [b - a for a, b in zip(ATTEMPT_TIMES[key], ATTEMPT_TIMES[key][1:])]
    assert 0.9 <= gaps[0] < 1.9 and 1.9 <= gaps[1] < 3.5, gaps


async def test_maximum_attempts_then_the_workflow_sees_the_last_failure(client, task_queue):
    async with worker(client, task_queue):
        result, events = await call(client, task_queue, activity="always_fails", args=["Boom"],
                                    start_to_close=10,
                                    retry={"initial_interval": 0.1, "maximum_attempts": 3})
    assert result["retry_state"] == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert result["cause"] == "ApplicationError" and result["type"] == "Boom"
    failed = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    assert failed.activity_task_failed_event_attributes.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    started = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started.activity_task_started_event_attributes.attempt == 3


async def test_non_retryable_error_types_stop_retries_at_once(client, task_queue):
    async with worker(client, task_queue):
        result, events = await call(client, task_queue, activity="always_fails", args=["BadInput"],
                                    start_to_close=10,
                                    retry={"initial_interval": 0.1, "non_retryable_error_types": ["BadInput"]})
    assert result["retry_state"] == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    started = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started.activity_task_started_event_attributes.attempt == 1


async def test_next_retry_delay_overrides_the_policy(client, task_queue):
    key = uuid.uuid4().hex
    async with worker(client, task_queue):
        result, _ = await call(client, task_queue, activity="delayed_retry", args=[key],
                               start_to_close=10, retry={"initial_interval": 0.1})
    assert result == {"result": 2}
    gap = ATTEMPT_TIMES[key][1] - ATTEMPT_TIMES[key][0]
    assert 1.4 <= gap < 3.0, gap


# Activity timeouts -----------------------------------------------------------------------


async def test_schedule_to_close_timeout_is_terminal(client, task_queue):
    async with worker(client, task_queue):
        result, events = await call(client, task_queue, activity="sleeps", args=[5],
                                    schedule_to_close=1)
    assert result["cause"] == "TimeoutError"
    assert result["timeout_type"] == TimeoutType.SCHEDULE_TO_CLOSE
    # Temporal's exact text when no time is left for another attempt.
    assert result["message"] == ("Not enough time to schedule next retry before activity "
                                 "ScheduleToClose timeout, giving up retrying")
    assert "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT" in activity_events(events)


async def test_start_to_close_timeout_leads_to_a_retry(client, task_queue):
    async with worker(client, task_queue):
        result, events = await call(client, task_queue, activity="slow_first_attempt", args=[3],
                                    start_to_close=1, retry={"initial_interval": 0.1})
    assert result == {"result": 2}
    assert activity_events(events)[-1] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"


async def test_schedule_to_start_timeout_is_terminal(client, task_queue):
    async with worker(client, task_queue):
        result, _ = await call(client, task_queue, activity="sleeps", args=[0],
                               activity_queue=f"{task_queue}-nobody-polls",
                               schedule_to_start=1, start_to_close=5)
    assert result["cause"] == "TimeoutError"
    assert result["timeout_type"] == TimeoutType.SCHEDULE_TO_START
    assert result["message"] == "activity ScheduleToStart timeout"


# Heartbeats ------------------------------------------------------------------------------


async def test_missed_heartbeat_retries_with_the_last_details(client, task_queue):
    async with worker(client, task_queue):
        result, events = await call(client, task_queue, activity="heartbeat_then_stall",
                                    args=["k"], start_to_close=30, heartbeat=1,
                                    retry={"initial_interval": 0.1})
    assert result == {"result": [2, "progress-7"]}
    # A heartbeat writes no event.
    assert "EVENT_TYPE_ACTIVITY_TASK_STARTED" in activity_events(events)
    assert len(activity_events(events)) == 3


async def test_heartbeat_response_carries_the_cancellation(client, task_queue):
    async with worker(client, task_queue):
        handle = await client.start_workflow(CancelActivity.run, id=unique_id("cancel-act"),
                                             task_queue=task_queue)
        result = await handle.result()
        events = await history_events(handle)
    assert result == "cancelled: CancelledError"
    assert handle.id in CANCELS_SEEN
    names = type_names([e.event_type for e in events])
    assert "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED" in names
    assert "EVENT_TYPE_ACTIVITY_TASK_CANCELED" in names


# Asynchronous completion -----------------------------------------------------------------


@pytest.mark.parametrize("by", ["token", "id"])
async def test_async_activity_completion(client, task_queue, by):
    activity_id = f"async-{uuid.uuid4().hex[:8]}"
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            CallActivity.run,
            {"activity": "completes_later", "start_to_close": 30, "heartbeat": 10,
             "activity_id": activity_id},
            id=unique_id("async"), task_queue=task_queue)
        token, run_id = await token_of(activity_id)
        if by == "token":
            async_handle = client.get_async_activity_handle(task_token=token)
        else:
            async_handle = client.get_async_activity_handle(
                workflow_id=handle.id, run_id=run_id, activity_id=activity_id)
        await async_handle.heartbeat("still working")
        desc = await handle.describe()
        assert desc.raw_description.pending_activities[0].heartbeat_details.payloads
        await async_handle.complete("finished elsewhere")
        assert await handle.result() == {"result": "finished elsewhere"}


async def test_async_activity_fail_and_report_cancellation(client, task_queue):
    activity_id = f"async-{uuid.uuid4().hex[:8]}"
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            CallActivity.run,
            {"activity": "completes_later", "start_to_close": 30, "activity_id": activity_id,
             "retry": {"maximum_attempts": 1}},
            id=unique_id("async-fail"), task_queue=task_queue)
        token, _ = await token_of(activity_id)
        await client.get_async_activity_handle(task_token=token).fail(
            ApplicationError("failed elsewhere", type="Elsewhere"))
        result = await handle.result()
    assert result["cause"] == "ApplicationError" and result["type"] == "Elsewhere"


@workflow.defn
class CancelsAsyncActivity:
    """Starts an activity that completes asynchronously, then asks for its cancellation and
    waits for the cancellation to be reported."""

    @workflow.run
    async def run(self, activity_id: str) -> str:
        handle = workflow.start_activity(
            completes_later, activity_id=activity_id, start_to_close_timeout=timedelta(seconds=30),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        await asyncio.sleep(1)
        handle.cancel()
        try:
            await handle
            return "completed"
        except ActivityError as err:
            return f"cancelled: {type(err.cause).__name__}"


async def test_async_activity_reports_cancellation(client, task_queue):
    activity_id = f"async-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[CancelsAsyncActivity],
                      activities=ACTIVITIES):
        handle = await client.start_workflow(CancelsAsyncActivity.run, activity_id,
                                             id=unique_id("async-cancel"), task_queue=task_queue)
        token, _ = await token_of(activity_id)
        async_handle = client.get_async_activity_handle(task_token=token)
        # Until the workflow asks, a cancellation cannot be reported.
        with pytest.raises(RPCError) as err:
            await async_handle.report_cancellation("too early")
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        await wait_for_event(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)
        # The heartbeat response tells the activity's owner about the request.
        with pytest.raises(AsyncActivityCancelledError):
            await async_handle.heartbeat()
        await async_handle.report_cancellation("gave up")
        assert await handle.result() == "cancelled: CancelledError"
    events = await history_events(handle)
    assert "EVENT_TYPE_ACTIVITY_TASK_CANCELED" in activity_events(events)


# Workflow timeouts and retries -----------------------------------------------------------


async def test_run_timeout_closes_the_run_as_timed_out(client, task_queue):
    async with worker(client, task_queue):
        handle = await client.start_workflow(SleepingWorkflow.run, 30, id=unique_id("wf-timeout"),
                                             task_queue=task_queue,
                                             run_timeout=timedelta(seconds=1))
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert isinstance(err.value.cause, TemporalTimeoutError)
    events = await history_events(handle)
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT


async def test_workflow_retry_policy_retries_in_the_same_chain(client, task_queue):
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            RetriedWorkflow.run, 3, id=unique_id("wf-retry"), task_queue=task_queue,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200),
                                     maximum_attempts=5))
        result = await handle.result()
    assert result["attempt"] == 3
    assert result["first_run_id"] == handle.first_execution_run_id
    assert result["run_id"] != handle.first_execution_run_id
    first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    first_events = await history_events(first)
    closed = first_events[-1]
    assert closed.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    assert closed.workflow_execution_failed_event_attributes.new_execution_run_id
    latest = await client.get_workflow_handle(handle.id).describe()
    assert latest.run_id == result["run_id"]


async def test_workflow_retries_stop_at_maximum_attempts(client, task_queue):
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            RetriedWorkflow.run, 10, id=unique_id("wf-retry-max"), task_queue=task_queue,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100),
                                     maximum_attempts=2))
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert "workflow attempt 2 fails" in str(err.value.cause)


async def test_execution_timeout_spans_the_whole_chain(client, task_queue):
    async with worker(client, task_queue):
        started = time.monotonic()
        handle = await client.start_workflow(
            RetriedWorkflow.run, 1000, id=unique_id("wf-exec-timeout"), task_queue=task_queue,
            execution_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=300),
                                     backoff_coefficient=1.0))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert time.monotonic() - started < 10
