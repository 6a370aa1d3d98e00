"""Cron workflows: a workflow started with a cron schedule runs again and again, one run per
schedule time, in one chain of runs under one workflow id.

- Every run, the first included, waits for the schedule's next time: its started event has
  first_workflow_task_backoff, always whole seconds (the time to the next schedule time,
  rounded up), and describe's execution time is the start time plus that backoff.
- A run that completes or fails closes with new_execution_run_id and starts its successor
  (initiator CRON_SCHEDULE, attempt 1, the chain's first run id, the last successful result;
  continued_failure when the run failed). With a retry policy, a failed run is retried first
  (initiator RETRY, attempt 2...), and the cron goes on once the retries are exhausted.
- Terminating or cancelling (a run that honours the cancellation) ends the cron. A cancel
  request ends the backoff at once; signals wait for it.
- An invalid schedule, or a schedule with a start delay, is InvalidArgument and starts nothing.
- Reading only the close event of a run that went on (what the SDK's result() does) gives a
  ContinuedAsNew event in its place, to clients that do not announce follows-next-run-id.

The expected sequences, values and texts are those Temporal's dev server gives. The schedules
are computed here independently (UTC unless CRON_TZ= names a zone) and compared.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    ContinueAsNewInitiator,
    EventType,
    HistoryEventFilterType,
    RetryState,
)
from temporalio.api.history.v1 import HistoryEvent, WorkflowExecutionContinuedAsNewEventAttributes
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError, TerminatedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import cron_workflows
from cron_workflows import (
    CronAlwaysFailsWorkflow,
    CronCounterWorkflow,
    CronFlakyWorkflow,
    CronRetriedWorkflow,
    CronWaitingWorkflow,
)
from helpers import decode, history_events, of_type, types_of, unique_id, wait_for_event

E = EventType
CRON = ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE
RETRY = ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY
STARTED = "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
TASK = ["EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
CLOSING = {E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
           E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
           E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
           E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW}
INVALID_CRON = "invalid CronSchedule."
CRON_WITH_DELAY = "CronSchedule and WorkflowStartDelay may not be used together."


def worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=cron_workflows.WORKFLOWS, **options)


# Runs of a chain -----------------------------------------------------------------------------


async def closed_history(client: Client, workflow_id: str, run_id: str,
                         within_s: float = 20) -> list[HistoryEvent]:
    """The history of one run, once it has closed."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    deadline = time.monotonic() + within_s
    while True:
        events = await history_events(handle)
        if events and events[-1].event_type in CLOSING:
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not closed within {within_s:g} s: "
                                 f"{types_of(events)}")
        await asyncio.sleep(0.1)


def next_run_of(events: list[HistoryEvent]) -> str:
    """The new_execution_run_id of a closed run's last event ("" when there is none)."""
    last = events[-1]
    attributes = getattr(last, last.WhichOneof("attributes"))
    return getattr(attributes, "new_execution_run_id", "")


async def runs_of(client: Client, workflow_id: str, first_run_id: str,
                  count: int) -> tuple[list[str], list[list[HistoryEvent]]]:
    """The first `count` runs of a chain, each once closed, followed through
    new_execution_run_id; the run ids returned hold one more, the run after them."""
    run_ids, histories = [first_run_id], []
    for _ in range(count):
        events = await closed_history(client, workflow_id, run_ids[-1])
        histories.append(events)
        assert next_run_of(events), types_of(events)
        run_ids.append(next_run_of(events))
    return run_ids, histories


def started_of(events: list[HistoryEvent]):
    assert events[0].event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    return events[0].workflow_execution_started_event_attributes


def backoff_of(events: list[HistoryEvent]) -> timedelta:
    return started_of(events).first_workflow_task_backoff.ToTimedelta()


def time_of(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=timezone.utc)


async def run_started(client: Client, workflow_id: str, run_id: str) -> list[HistoryEvent]:
    """The history of a run that has at least its started event."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    return await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)


async def no_new_run(client: Client, workflow_id: str, run_id: str, wait_s: float) -> None:
    """After `wait_s`, the workflow id's latest run is still `run_id`."""
    await asyncio.sleep(wait_s)
    latest = await client.get_workflow_handle(workflow_id).describe()
    assert latest.run_id == run_id


# Schedules, computed independently -------------------------------------------------------

PREDEFINED = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
              "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
              "@hourly": "0 * * * *"}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def cron_field(text: str, low: int, high: int, names: list[str] | None = None) -> set[int]:
    """The values of one cron field: *, ?, N, A-B, */S, A-B/S, names, lists."""
    values: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span in ("*", "?"):
            first, last = low, high
        else:
            bounds = [names.index(b.upper()) + (low if names is MONTHS else 0)
                      if names and b.upper() in names else int(b) for b in span.split("-")]
            first, last = bounds[0], bounds[-1]
            if step and len(bounds) == 1:
                last = high
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


def cron_next(schedule: str, after: datetime) -> datetime:
    """The first time strictly after `after` that a 5-field (or predefined) schedule, with an
    optional CRON_TZ=/TZ= prefix, names; day of month and day of week are either-or when both
    are restricted, as in cron."""
    zone = ZoneInfo("UTC")
    if schedule.startswith(("CRON_TZ=", "TZ=")):
        prefix, schedule = schedule.split(" ", 1)
        zone = ZoneInfo(prefix.split("=", 1)[1])
    minute, hour, dom, month, dow = PREDEFINED.get(schedule, schedule).split()
    minutes, hours = cron_field(minute, 0, 59), cron_field(hour, 0, 23)
    doms, months = cron_field(dom, 1, 31), cron_field(month, 1, 12, MONTHS)
    dows = cron_field(dow, 0, 6, DAYS)
    either = dom not in ("*", "?") and dow not in ("*", "?")
    t = after.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(1_000_000):
        day_of_week = (t.weekday() + 1) % 7
        day_ok = ((t.day in doms) or (day_of_week in dows) if either
                  else (t.day in doms) and (day_of_week in dows))
        if t.month not in months or not day_ok:
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
        elif t.hour not in hours:
            t = (t + timedelta(hours=1)).replace(minute=0)
        elif t.minute not in minutes:
            t += timedelta(minutes=1)
        else:
            return t.astimezone(timezone.utc)
    raise AssertionError(f"no time for {schedule!r}")


def every_next(period: timedelta, after: datetime) -> datetime:
    """@every: `period` (whole seconds, at least one) later, on a whole second."""
    period = max(timedelta(seconds=int(period.total_seconds())), timedelta(seconds=1))
    return (after + period).replace(microsecond=0)


def rounded_up(delta: timedelta) -> timedelta:
    return timedelta(seconds=math.ceil(delta.total_seconds()))


def every_backoff(period: timedelta, execution_time: datetime, closed: datetime) -> timedelta:
    """The backoff of the run after one with `execution_time` that closed at `closed`, rounded
    up to whole seconds: to the first schedule time after the execution time that is not
    before the close; or, for a run that closed before its execution time (its backoff cut
    short by a cancel request), to that execution time itself."""
    if closed < execution_time:
        t = execution_time
    else:
        t = every_next(period, execution_time)
        while t < closed:
            t = every_next(period, t)
    return rounded_up(t - closed)


def assert_cron_backoff(period: timedelta, previous: list[HistoryEvent],
                        following: list[HistoryEvent]) -> None:
    """The backoff of `following`, computed from the previous run's execution time and close
    (allowing the server's clock reading a few milliseconds before the close event's time)."""
    execution_time = time_of(previous[0]) + backoff_of(previous)
    closed = time_of(previous[-1])
    allowed = {every_backoff(period, execution_time, closed - timedelta(milliseconds=ms))
               for ms in (0, 50)}
    assert backoff_of(following) in allowed, (backoff_of(following), allowed)


# The first run ---------------------------------------------------------------------------


async def test_first_run_waits_for_the_schedule(client: Client, task_queue: str):
    """No worker: the first run is started and waits, with nothing but its started event."""
    handle = await client.start_workflow(CronCounterWorkflow.run, id=unique_id("cron-first"),
                                         task_queue=task_queue, cron_schedule="@every 2s")
    desc = await handle.describe()
    events = await history_events(handle)
    assert types_of(events) == [STARTED]
    started = started_of(events)
    assert started.cron_schedule == "@every 2s"
    assert started.first_workflow_task_backoff.ToTimedelta() == timedelta(seconds=2)
    # Even the first run of a cron workflow names the schedule as its initiator.
    assert started.initiator == CRON
    assert started.attempt == 1
    assert started.first_execution_run_id == handle.result_run_id
    assert started.original_execution_run_id == handle.result_run_id
    assert not started.continued_execution_run_id
    assert not started.HasField("last_completion_result")
    assert not started.HasField("continued_failure")
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert desc.start_time == time_of(events[0])
    assert desc.execution_time == desc.start_time + timedelta(seconds=2)
    assert desc.raw_description.workflow_execution_info.first_run_id == handle.result_run_id
    await handle.terminate(reason="test over")


SCHEDULES = [
    "* * * * *", "*/5 * * * *",
    "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
    "CRON_TZ=America/New_York 0 5 * * *", "TZ=Asia/Kolkata 30 5 * * *",
    "CRON_TZ=America/New_York @hourly",
    "0 0 13 * 5", "0 12 1 * MON",  # day of month and day of week: either one
    "0 5 ? * *", "0 5 * JAN-MAR *", "0-10/3 5 * * *",
]


@pytest.mark.parametrize("schedule", SCHEDULES)
async def test_first_backoff_of_calendar_schedules(client: Client, task_queue: str,
                                                   schedule: str):
    """The first run's backoff is the time from the start to the schedule's next time, rounded
    up to whole seconds; the execution time is the start time plus the backoff."""
    handle = await client.start_workflow(CronCounterWorkflow.run, id=unique_id("cron-form"),
                                         task_queue=task_queue, cron_schedule=schedule)
    try:
        desc = await handle.describe()
        started = started_of(await history_events(handle))
        assert started.cron_schedule == schedule
        due = cron_next(schedule, desc.start_time)
        backoff = started.first_workflow_task_backoff.ToTimedelta()
        assert backoff == rounded_up(due - desc.start_time), (due, desc.start_time)
        assert desc.execution_time == desc.start_time + backoff
        # Rounded up: the execution time is the schedule time plus less than a second.
        assert timedelta(0) <= desc.execution_time - due < timedelta(seconds=1)
        if schedule == "* * * * *":
            assert timedelta(0) < backoff <= timedelta(seconds=60)
        if schedule == "CRON_TZ=America/New_York 0 5 * * *":
            local = desc.execution_time.astimezone(ZoneInfo("America/New_York"))
            assert (local.hour, local.minute, local.second) == (5, 0, 0)
            assert timedelta(0) < local - desc.start_time <= timedelta(days=1)
    finally:
        await handle.terminate(reason="test over")


@pytest.mark.parametrize("schedule,period", [
    ("@every 90s", timedelta(seconds=90)), ("@every 1m30s", timedelta(seconds=90)),
    ("@every 1h", timedelta(hours=1)), ("@every 500ms", timedelta(seconds=1)),
])
async def test_first_backoff_of_every_schedules(client: Client, task_queue: str,
                                                schedule: str, period: timedelta):
    """@every: the next whole second `period` after the start (at least a second), rounded
    up, which is `period` itself."""
    handle = await client.start_workflow(CronCounterWorkflow.run, id=unique_id("cron-every"),
                                         task_queue=task_queue, cron_schedule=schedule)
    try:
        desc = await handle.describe()
        backoff = backoff_of(await history_events(handle))
        assert backoff == rounded_up(every_next(period, desc.start_time) - desc.start_time)
        assert backoff == period
        assert desc.execution_time == desc.start_time + period
    finally:
        await handle.terminate(reason="test over")


# Chains of runs --------------------------------------------------------------------------


async def test_each_run_gets_the_last_result(client: Client, task_queue: str,
                                             worker_options: dict):
    """Three runs, each counting one more than the last; the chain's ids, initiators and
    backoffs."""
    period = timedelta(seconds=2)
    async with worker(client, task_queue, **worker_options):
        handle = await client.start_workflow(CronCounterWorkflow.run, id=unique_id("cron-chain"),
                                             task_queue=task_queue, cron_schedule="@every 2s")
        run_ids, histories = await runs_of(client, handle.id, handle.result_run_id, 3)
        following = await run_started(client, handle.id, run_ids[3])
        latest = await client.get_workflow_handle(handle.id).describe()
        await handle.terminate(reason="test over")
    assert len(set(run_ids)) == 4 and run_ids[0] == handle.result_run_id
    assert latest.run_id == run_ids[3]

    results = []
    for i, events in enumerate(histories):
        assert types_of(events) == [STARTED, *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]
        assert [e.event_id for e in events] == [1, 2, 3, 4, 5]
        completed = events[-1].workflow_execution_completed_event_attributes
        assert completed.new_execution_run_id == run_ids[i + 1]
        [result] = decode(client, completed.result)
        assert result == {"count": i + 1, "had_last_result": i > 0, "last_failure": None,
                          "run_id": run_ids[i]}
        results.append(result)
        # The first workflow task waits for the execution time.
        started = started_of(events)
        execution_time = time_of(events[0]) + backoff_of(events)
        assert time_of(events[1]) >= execution_time
        desc = await client.get_workflow_handle(handle.id, run_id=run_ids[i]).describe()
        assert desc.status == WorkflowExecutionStatus.COMPLETED
        assert desc.execution_time == execution_time
        assert started.cron_schedule == "@every 2s"

    for i, events in enumerate([*histories[1:], following], start=1):
        started = started_of(events)
        assert started.initiator == CRON
        assert started.continued_execution_run_id == run_ids[i - 1]
        assert started.first_execution_run_id == run_ids[0]
        assert started.original_execution_run_id == run_ids[i]
        assert started.attempt == 1
        assert started.cron_schedule == "@every 2s"
        assert decode(client, started.last_completion_result) == [results[i - 1]]
        assert not started.HasField("continued_failure")
        assert started.workflow_type.name == "CronCounterWorkflow"
        assert started.task_queue.name == task_queue
        # The new run starts as the last one closes.
        assert time_of(events[0]) >= time_of(histories[i - 1][-1])
        assert_cron_backoff(period, histories[i - 1], events)
    assert backoff_of(histories[0]) == period


async def test_a_failed_run_does_not_stop_the_cron(client: Client, task_queue: str):
    """The second run fails; the third gets its failure and the first run's result, the fourth
    the third's result and no failure."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CronFlakyWorkflow.run, 1,
                                             id=unique_id("cron-fail"), task_queue=task_queue,
                                             cron_schedule="@every 1s")
        run_ids, histories = await runs_of(client, handle.id, handle.result_run_id, 3)
        following = await run_started(client, handle.id, run_ids[3])
        failed_desc = await client.get_workflow_handle(handle.id, run_id=run_ids[1]).describe()
        await handle.terminate(reason="test over")
    ok, failed, recovered = histories
    assert types_of(failed) == [STARTED, *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"]
    attributes = failed[-1].workflow_execution_failed_event_attributes
    assert attributes.failure.message == "failing after 1"
    assert attributes.failure.application_failure_info.type == "CronRunFailed"
    assert attributes.retry_state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    assert attributes.new_execution_run_id == run_ids[2]
    assert attributes.workflow_task_completed_event_id == 4
    assert failed_desc.status == WorkflowExecutionStatus.FAILED

    first_result = {"count": 1, "last_failure": None}
    assert decode(client, ok[-1].workflow_execution_completed_event_attributes.result) == [
        first_result]
    # After the failure: its failure, and still the last successful result.
    started = started_of(recovered)
    assert started.initiator == CRON and started.attempt == 1
    assert started.continued_execution_run_id == run_ids[1]
    assert started.continued_failure.message == "failing after 1"
    assert started.continued_failure.application_failure_info.type == "CronRunFailed"
    assert decode(client, started.last_completion_result) == [first_result]
    second_result = {"count": 2,
                     "last_failure": ["ApplicationError", "failing after 1", "CronRunFailed"]}
    assert decode(client, recovered[-1].workflow_execution_completed_event_attributes.result) \
        == [second_result]
    # After a success: no failure.
    started = started_of(following)
    assert not started.HasField("continued_failure")
    assert decode(client, started.last_completion_result) == [second_result]
    assert started.first_execution_run_id == run_ids[0]


async def test_retries_come_before_the_next_cron_run(client: Client, task_queue: str):
    """With a retry policy, a failed run is retried (RETRY, attempt 2, the retry interval as
    backoff); once the attempts are used up the cron goes on (CRON_SCHEDULE, attempt 1)."""
    policy = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)
    async with worker(client, task_queue):
        handle = await client.start_workflow(CronAlwaysFailsWorkflow.run,
                                             id=unique_id("cron-retry"), task_queue=task_queue,
                                             cron_schedule="@every 2s", retry_policy=policy)
        run_ids, histories = await runs_of(client, handle.id, handle.result_run_id, 3)
        following = await run_started(client, handle.id, run_ids[3])
        await handle.terminate(reason="test over")

    expected = [  # (initiator, attempt, retry state of its close, backoff)
        (CRON, 1, RetryState.RETRY_STATE_IN_PROGRESS, timedelta(seconds=2)),
        (RETRY, 2, RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED, timedelta(seconds=1)),
        (CRON, 1, RetryState.RETRY_STATE_IN_PROGRESS, None),
        (RETRY, 2, None, timedelta(seconds=1)),
    ]
    for i, (events, (initiator, attempt, retry_state, backoff)) in enumerate(
            zip([*histories, following], expected)):
        started = started_of(events)
        assert started.initiator == initiator, i
        assert started.attempt == attempt, i
        assert started.first_execution_run_id == run_ids[0]
        assert started.cron_schedule == "@every 2s"
        # The retry policy, with the server's defaults filled in, goes along.
        assert started.retry_policy.initial_interval.ToTimedelta() == timedelta(seconds=1)
        assert started.retry_policy.backoff_coefficient == 2.0
        assert started.retry_policy.maximum_interval.ToTimedelta() == timedelta(seconds=100)
        assert started.retry_policy.maximum_attempts == 2
        assert not started.HasField("last_completion_result")
        if backoff is not None:
            assert backoff_of(events) == backoff, i
        if i > 0:
            assert started.continued_execution_run_id == run_ids[i - 1]
            assert started.continued_failure.message == f"attempt {3 - attempt} failed"
        if retry_state is not None:
            assert types_of(events) == [STARTED, *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"]
            failed = events[-1].workflow_execution_failed_event_attributes
            assert failed.failure.message == f"attempt {attempt} failed"
            assert failed.retry_state == retry_state
            assert failed.new_execution_run_id == run_ids[i + 1]
    # The cron run after the retries keeps to the schedule, from the retry's execution time.
    assert_cron_backoff(timedelta(seconds=2), histories[1], histories[2])


async def test_a_retry_does_not_carry_the_last_result(client: Client, task_queue: str):
    """A cron run's first attempt fails and its retry succeeds. The retry is not handed the
    last result (it counts from zero again); the next cron run gets the retry's result."""
    policy = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
    async with worker(client, task_queue):
        handle = await client.start_workflow(CronRetriedWorkflow.run, 2,
                                             id=unique_id("cron-retried"),
                                             task_queue=task_queue, cron_schedule="@every 1s",
                                             retry_policy=policy)
        run_ids, histories = await runs_of(client, handle.id, handle.result_run_id, 3)
        following = await run_started(client, handle.id, run_ids[3])
        await handle.terminate(reason="test over")
    first, failed, retried = histories
    first_result = {"count": 1, "attempt": 1, "last_failure": None}
    assert decode(client, first[-1].workflow_execution_completed_event_attributes.result) == [
        first_result]
    assert decode(client, started_of(failed).last_completion_result) == [first_result]
    attributes = failed[-1].workflow_execution_failed_event_attributes
    assert attributes.retry_state == RetryState.RETRY_STATE_IN_PROGRESS

    started = started_of(retried)
    assert (started.initiator, started.attempt) == (RETRY, 2)
    assert started.continued_failure.message == "attempt 1 failed"
    assert not started.HasField("last_completion_result")
    retried_result = {"count": 1, "attempt": 2,
                      "last_failure": ["ApplicationError", "attempt 1 failed", "CronRunFailed"]}
    assert decode(client, retried[-1].workflow_execution_completed_event_attributes.result) == [
        retried_result]

    started = started_of(following)
    assert (started.initiator, started.attempt) == (CRON, 1)
    assert decode(client, started.last_completion_result) == [retried_result]
    assert not started.HasField("continued_failure")


# Ending a cron ---------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["backoff", "running"])
async def test_terminate_ends_the_cron(client: Client, task_queue: str, when: str):
    """Terminated while waiting for its schedule time, or while running: no run follows, and
    result() follows the chain to the termination."""
    async with worker(client, task_queue):
        if when == "backoff":
            handle = await client.start_workflow(
                CronCounterWorkflow.run, id=unique_id("cron-term"), task_queue=task_queue,
                cron_schedule="@every 2s")
            run_ids, _ = await runs_of(client, handle.id, handle.result_run_id, 1)
        else:
            handle = await client.start_workflow(
                CronWaitingWorkflow.run, id=unique_id("cron-term"), task_queue=task_queue,
                cron_schedule="@every 1s")
            await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
            run_ids = [handle.result_run_id]
        await client.get_workflow_handle(handle.id).terminate(reason="enough")
        await no_new_run(client, handle.id, run_ids[-1], 3)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, TerminatedError)
    assert failure.value.cause.message == "enough"
    events = await history_events(client.get_workflow_handle(handle.id, run_id=run_ids[-1]))
    body = [] if when == "backoff" else TASK
    assert types_of(events) == [STARTED, *body, "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"]
    assert events[-1].workflow_execution_terminated_event_attributes.reason == "enough"
    desc = await client.get_workflow_handle(handle.id).describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED


async def test_cancelling_a_running_run_ends_the_cron(client: Client, task_queue: str):
    async with worker(client, task_queue):
        handle = await client.start_workflow(CronWaitingWorkflow.run, id=unique_id("cron-cancel"),
                                             task_queue=task_queue, cron_schedule="@every 1s")
        await wait_for_event(handle, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await client.get_workflow_handle(handle.id).cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        await no_new_run(client, handle.id, handle.result_run_id, 3)
    events = await history_events(handle)
    assert types_of(events) == [STARTED, *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
                                *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_signals_wait_for_the_schedule_and_a_cancel_does_not(client: Client,
                                                                  task_queue: str):
    """Signal-with-start and a plain signal are recorded and wait for the (hour-long) backoff;
    a cancel request schedules the first workflow task at once, and the run ends cancelled."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            CronWaitingWorkflow.run, id=unique_id("cron-sws"), task_queue=task_queue,
            cron_schedule="@hourly", start_signal="note", start_signal_args=["first"])
        await handle.signal(CronWaitingWorkflow.note, "second")
        await asyncio.sleep(1)
        events = await history_events(handle)
        assert types_of(events) == [STARTED, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
                                    "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"]
        desc = await handle.describe()
        assert backoff_of(events) == rounded_up(cron_next("@hourly", desc.start_time)
                                                - desc.start_time)
        assert desc.execution_time == desc.start_time + backoff_of(events)

        began = time.monotonic()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        assert time.monotonic() - began < 10
        await no_new_run(client, handle.id, handle.result_run_id, 1)
    events = await history_events(handle)
    assert types_of(events) == [STARTED, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
                                "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
                                "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED", *TASK,
                                "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"]
    assert time_of(events[4]) < desc.execution_time
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_a_run_that_completes_despite_a_cancel_goes_on(client: Client, task_queue: str):
    """The cancel request ends the first run's backoff; the workflow (which never awaits)
    completes anyway, and a completed run continues the cron."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CronCounterWorkflow.run,
                                             id=unique_id("cron-cancel-ignored"),
                                             task_queue=task_queue, cron_schedule="@every 2s")
        desc = await handle.describe()
        await client.get_workflow_handle(handle.id).cancel()
        run_ids, [events] = await runs_of(client, handle.id, handle.result_run_id, 1)
        following = await run_started(client, handle.id, run_ids[1])
        await handle.terminate(reason="test over")
    assert types_of(events) == [STARTED, "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
                                *TASK, "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"]
    assert time_of(events[2]) < desc.execution_time  # the backoff was cut short
    assert events[-1].workflow_execution_completed_event_attributes.new_execution_run_id == \
        run_ids[1]
    started = started_of(following)
    assert started.initiator == CRON
    assert decode(client, started.last_completion_result)[0]["count"] == 1
    # The next run carries no cancel request; it waits for the schedule time the cut-short
    # run was waiting for.
    assert not of_type(following, E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert_cron_backoff(timedelta(seconds=2), events, following)
    assert backoff_of(following) == rounded_up(desc.execution_time - time_of(events[-1]))


# Reading a cron run's result -------------------------------------------------------------


async def close_events(client: Client, workflow_id: str, run_id: str,
                       **rpc: Any) -> list[HistoryEvent]:
    response = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT,
            skip_archival=True),
        **rpc)
    return list(response.history.events)


async def test_close_event_of_a_run_that_went_on(client: Client, task_queue: str):
    """The close event alone (what result() asks for) of a completed or failed cron run comes
    as a ContinuedAsNew event in its place, with the new run id and the result or failure;
    a client announcing follows-next-run-id gets the real event. So a handle on one run
    reports the continuation, and result() of the chain never ends while the cron goes on."""
    async with worker(client, task_queue):
        handle = await client.start_workflow(CronFlakyWorkflow.run, 1,
                                             id=unique_id("cron-close"), task_queue=task_queue,
                                             cron_schedule="@every 1s")
        run_ids, histories = await runs_of(client, handle.id, handle.result_run_id, 2)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(handle.result(), 1.5)
        await handle.terminate(reason="test over")
    for i, events in enumerate(histories):
        real = events[-1]
        [fake] = await close_events(client, handle.id, run_ids[i])
        assert fake.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        assert (fake.event_id, fake.event_time, fake.task_id) == (
            real.event_id, real.event_time, real.task_id)
        if i == 0:
            expected = WorkflowExecutionContinuedAsNewEventAttributes(
                new_execution_run_id=run_ids[1],
                last_completion_result=real.workflow_execution_completed_event_attributes.result)
        else:
            expected = WorkflowExecutionContinuedAsNewEventAttributes(
                new_execution_run_id=run_ids[2],
                failure=real.workflow_execution_failed_event_attributes.failure)
        assert fake.workflow_execution_continued_as_new_event_attributes == expected
        [as_is] = await close_events(client, handle.id, run_ids[i],
                                     metadata={"supported-features": "follows-next-run-id"})
        assert as_is == real

        pinned = client.get_workflow_handle(handle.id, run_id=run_ids[i])
        with pytest.raises(WorkflowContinuedAsNewError) as continued:
            await pinned.result(follow_runs=False)
        assert continued.value.new_execution_run_id == run_ids[i + 1]


# Invalid starts --------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [
    "bogus", "* * * *", "61 * * * *", "0 5 * * 7", "0 5 L * *", "*/15 * * * * *",
    "0 0 * * * *", "@every", "@reboot", "@Hourly", "  @every 1s",
    "CRON_TZ=Nowhere/Land 0 5 * * *",
])
async def test_invalid_schedule_starts_nothing(client: Client, task_queue: str, schedule: str):
    workflow_id = unique_id("cron-invalid")
    with pytest.raises(RPCError) as caught:
        await client.start_workflow(CronCounterWorkflow.run, id=workflow_id,
                                    task_queue=task_queue, cron_schedule=schedule)
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message == INVALID_CRON
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert missing.value.message == f"workflow not found for ID: {workflow_id}"


@pytest.mark.parametrize("schedule,delay", [
    ("@every 2s", timedelta(seconds=3)),
    ("@every 2s", timedelta(0)),  # a zero delay is still a delay
    ("bogus", timedelta(seconds=3)),  # checked before the schedule itself
])
async def test_schedule_with_start_delay_is_refused(client: Client, task_queue: str,
                                                   schedule: str, delay: timedelta):
    workflow_id = unique_id("cron-delay")
    with pytest.raises(RPCError) as caught:
        await client.start_workflow(CronCounterWorkflow.run, id=workflow_id,
                                    task_queue=task_queue, cron_schedule=schedule,
                                    start_delay=delay)
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message == CRON_WITH_DELAY
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_empty_schedule_is_no_cron(client: Client, task_queue: str):
    """An empty schedule starts an ordinary workflow: no cron, no initiator, and a zero first
    backoff (present, as Temporal writes it for every start without a delay)."""
    handle = await client.start_workflow(CronCounterWorkflow.run, id=unique_id("cron-empty"),
                                         task_queue=task_queue, cron_schedule="")
    events = await history_events(handle)
    started = started_of(events)
    assert started.cron_schedule == ""
    assert started.HasField("first_workflow_task_backoff")
    assert started.first_workflow_task_backoff.ToTimedelta() == timedelta(0)
    assert types_of(events) == [STARTED, "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED"]
    assert started.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_UNSPECIFIED
    await handle.terminate(reason="test over")
