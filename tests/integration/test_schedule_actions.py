"""Schedules through the Python SDK and the `temporal` CLI: create, describe, list, update,
patch (trigger, pause, unpause, backfill), delete, ListScheduleMatchingTimes, and the actions
a schedule takes: ids and search attributes of the workflows it starts, every overlap
policy, pause-on-failure, limited actions, the last completion result and failure.

Expected texts and shapes are those of Temporal's scheduler (its workflow-backed one, which
the dev server runs): its workflow ids `<id>-<RFC 3339 second>`, its notes ("paused due to
workflow failure: <id>: <message>"), its reasons ("terminated by schedule overlap policy").
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from helpers import unique_id

SECOND = timedelta(seconds=1)
OWNER = SearchAttributeKey.for_keyword("ScheduleOwner")
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")
SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name="ScheduledEcho")
class ScheduledEcho:
    @workflow.run
    async def run(self, arg: str) -> str:
        return f"echo {arg}"


@workflow.defn(name="ScheduledBlocker")
class ScheduledBlocker:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "released"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn(name="ScheduledCounter")
class ScheduledCounter:
    @workflow.run
    async def run(self) -> int:
        last = workflow.get_last_completion_result()
        return (last or 0) + 1


@workflow.defn(name="ScheduledFailure")
class ScheduledFailure:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("boom", non_retryable=True)


WORKFLOWS = [ScheduledEcho, ScheduledBlocker, ScheduledCounter, ScheduledFailure]


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS)


def every(seconds: float, **spec: Any) -> ScheduleSpec:
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))], **spec)


def action(workflow_type: str, task_queue: str, workflow_id: str, *args: Any,
           **options: Any) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(workflow_type, args=list(args), id=workflow_id,
                                       task_queue=task_queue, **options)


async def eventually(fetch: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool],
                     what: str, within_s: float = 15) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        answer = await fetch()
        if accept(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {within_s:g} s; last: {answer!r}")
        await asyncio.sleep(0.2)


async def started(client: Client, schedule_id: str) -> list:
    return [w async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'")]


def action_time(workflow_id: str) -> datetime:
    return datetime.strptime(workflow_id[-20:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@pytest.fixture
async def owner_attribute(client: Client) -> None:
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="default",
        search_attributes={"ScheduleOwner": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}))


async def test_create_describe_list_and_delete(client: Client, task_queue: str,
                                               owner_attribute: None) -> None:
    schedule_id = unique_id("sched")
    owner = unique_id("owner")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id,
            Schedule(action=action("ScheduledEcho", task_queue, f"{schedule_id}-wf", "hello",
                                   memo={"from": "schedule"}),
                     spec=every(1),
                     state=ScheduleState(note="Here's a note on my Schedule.")),
            memo={"kind": "test"},
            search_attributes=TypedSearchAttributes([SearchAttributePair(OWNER, owner)]))
        with pytest.raises(ScheduleAlreadyRunningError):
            await client.create_schedule(
                schedule_id, Schedule(action=action("ScheduledEcho", task_queue, "x"), spec=every(1)))

        desc = await eventually(handle.describe, lambda d: d.info.num_actions >= 2,
                                "two actions")
        assert desc.schedule.state.note == "Here's a note on my Schedule."
        assert not desc.schedule.state.paused
        assert desc.schedule.spec.intervals == [ScheduleIntervalSpec(every=SECOND)]
        assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert desc.schedule.policy.catchup_window == timedelta(days=365)
        assert len(desc.info.next_action_times) == 10
        assert desc.info.next_action_times == sorted(desc.info.next_action_times)
        assert await desc.memo_value("kind") == "test"
        assert desc.typed_search_attributes.get(OWNER) == owner

        # Each action: <workflow id>-<its time>, marked with the schedule and its time.
        recent = desc.info.recent_actions[-1]
        run = client.get_workflow_handle(recent.action.workflow_id,
                                         run_id=recent.action.first_execution_run_id)
        assert await run.result() == "echo hello"
        run_desc = await run.describe()
        assert recent.action.workflow_id.startswith(f"{schedule_id}-wf-")
        nominal = action_time(recent.action.workflow_id)
        assert run_desc.typed_search_attributes.get(SCHEDULED_BY) == schedule_id
        assert run_desc.typed_search_attributes.get(SCHEDULED_AT) == nominal
        assert await run_desc.memo_value("from") == "schedule"
        assert recent.scheduled_at.replace(microsecond=0) == nominal

        listed = [s async for s in await client.list_schedules(f"ScheduleOwner = '{owner}'")]
        assert [s.id for s in listed] == [schedule_id]
        assert listed[0].info.next_action_times
        by_id = [s async for s in await client.list_schedules(f"ScheduleId = '{schedule_id}'")]
        assert [s.id for s in by_id] == [schedule_id]
        # The schedule itself is not a workflow in the workflow list.
        rows = [w async for w in client.list_workflows(f"WorkflowId = 'temporal-sys-scheduler:{schedule_id}'")]
        assert rows == []

        await handle.delete()
        with pytest.raises(RPCError) as caught:
            await handle.describe()
        assert (caught.value.status, caught.value.message) == (RPCStatusCode.NOT_FOUND,
                                                               "schedule not found")
        with pytest.raises(RPCError) as caught:
            await handle.pause()
        assert (caught.value.status, caught.value.message) == (
            RPCStatusCode.NOT_FOUND, "workflow execution already completed")
        assert schedule_id not in [s.id async for s in await client.list_schedules()]
        # A deleted schedule's id can be taken again.
        again = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledEcho", task_queue, "again", "x"),
                                  spec=every(3600)))
        assert (await again.describe()).info.num_actions == 0
        await again.delete()
        # One that never was: Temporal names its scheduler workflow.
        with pytest.raises(RPCError) as caught:
            await client.get_schedule_handle(f"{schedule_id}-never").describe()
        assert (caught.value.status, caught.value.message) == (
            RPCStatusCode.NOT_FOUND,
            f"workflow not found for ID: temporal-sys-scheduler:{schedule_id}-never")


async def test_deleting_a_schedule_leaves_its_workflows_running(client: Client,
                                                                task_queue: str) -> None:
    schedule_id = unique_id("sched-del")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledBlocker", task_queue, f"{schedule_id}-wf"),
                                  spec=every(1)))
        desc = await eventually(handle.describe, lambda d: len(d.info.running_actions) == 1,
                                "a running action")
        running = desc.info.running_actions[0]
        await handle.delete()
        run = client.get_workflow_handle(running.workflow_id, run_id=running.first_execution_run_id)
        assert (await run.describe()).status == WorkflowExecutionStatus.RUNNING
        await run.signal(ScheduledBlocker.finish)
        assert await run.result() == "released"


@pytest.mark.parametrize("policy", [
    ScheduleOverlapPolicy.SKIP, ScheduleOverlapPolicy.BUFFER_ONE, ScheduleOverlapPolicy.BUFFER_ALL,
    ScheduleOverlapPolicy.CANCEL_OTHER, ScheduleOverlapPolicy.TERMINATE_OTHER,
    ScheduleOverlapPolicy.ALLOW_ALL])
async def test_overlap_policies(client: Client, task_queue: str, policy) -> None:
    schedule_id = unique_id("overlap")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledBlocker", task_queue, f"{schedule_id}-wf"),
                                  spec=every(1), policy=SchedulePolicy(overlap=policy)))
        await asyncio.sleep(4.5)
        await handle.pause(note="observed")
        await asyncio.sleep(0.5)
        desc = await handle.describe()
        runs = await started(client, schedule_id)
        statuses = sorted(str(r.status) for r in runs)
        running = [r for r in runs if r.status == WorkflowExecutionStatus.RUNNING]
        if policy == ScheduleOverlapPolicy.SKIP:
            assert len(runs) == 1, statuses
            assert desc.info.num_actions_skipped_overlap >= 3
        elif policy == ScheduleOverlapPolicy.BUFFER_ONE:
            assert len(runs) == 1, statuses
            assert desc.info.num_actions_skipped_overlap >= 2
            # The one buffered start follows as soon as the running one closes (once the
            # schedule is unpaused: a paused schedule drops automated starts).
            await handle.unpause(note="go on")
            await client.get_workflow_handle(runs[0].id).signal(ScheduledBlocker.finish)
            await eventually(lambda: started(client, schedule_id), lambda rs: len(rs) == 2,
                             "the buffered start", within_s=5)
        elif policy == ScheduleOverlapPolicy.BUFFER_ALL:
            assert len(runs) == 1, statuses
            assert desc.info.num_actions_skipped_overlap == 0
            # Paused: the buffered starts are dropped when the running one ends (paused
            # schedules take no automated action).
        # CANCEL_OTHER and TERMINATE_OTHER: each action stops the running run and starts
        # once it has closed; whether the last one started before the pause is a matter of
        # timing (a paused schedule drops the start that waited).
        elif policy == ScheduleOverlapPolicy.CANCEL_OTHER:
            assert len(runs) >= 3, statuses
            assert len(running) <= 1, statuses
            assert all(r.status == WorkflowExecutionStatus.CANCELED for r in runs if r not in running)
        elif policy == ScheduleOverlapPolicy.TERMINATE_OTHER:
            assert len(runs) >= 3, statuses
            assert len(running) <= 1, statuses
            for r in runs:
                if r.status != WorkflowExecutionStatus.RUNNING:
                    assert r.status == WorkflowExecutionStatus.TERMINATED
            ended = next(r for r in runs if r.status == WorkflowExecutionStatus.TERMINATED)
            history = await client.get_workflow_handle(ended.id, run_id=ended.run_id).fetch_history()
            attrs = history.events[-1].workflow_execution_terminated_event_attributes
            assert attrs.reason == "terminated by schedule overlap policy"
        else:  # ALLOW_ALL: every action starts, none is tracked as running
            assert len(runs) >= 4 and len(running) == len(runs), statuses
            assert desc.info.running_actions == []
        for r in await started(client, schedule_id):
            if r.status == WorkflowExecutionStatus.RUNNING:
                await client.get_workflow_handle(r.id, run_id=r.run_id).terminate("test over")
        await handle.delete()


async def test_pause_on_failure_records_the_failure(client: Client, task_queue: str) -> None:
    schedule_id = unique_id("sched-fail")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledFailure", task_queue, f"{schedule_id}-wf"),
                                  spec=every(1), policy=SchedulePolicy(pause_on_failure=True)))
        desc = await eventually(handle.describe, lambda d: d.schedule.state.paused,
                                "the schedule paused")
        failed = desc.info.recent_actions[0].action.workflow_id
        assert desc.schedule.state.note == f"paused due to workflow failure: {failed}: boom"
        assert desc.info.num_actions == 1
        await handle.delete()


async def test_each_run_gets_the_last_completion_result(client: Client, task_queue: str) -> None:
    schedule_id = unique_id("sched-count")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledCounter", task_queue, f"{schedule_id}-wf"),
                                  spec=every(1)))
        await eventually(handle.describe, lambda d: d.info.num_actions >= 4, "four actions")
        await handle.pause()
        runs = sorted(await started(client, schedule_id), key=lambda r: r.id)
        results = [await client.get_workflow_handle(r.id, run_id=r.run_id).result() for r in runs]
        assert results == list(range(1, len(runs) + 1)), results
        await handle.delete()


async def test_limited_actions_count_down(client: Client, task_queue: str) -> None:
    schedule_id = unique_id("sched-limit")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledEcho", task_queue, f"{schedule_id}-wf", "x"),
                                  spec=every(1),
                                  state=ScheduleState(limited_actions=True, remaining_actions=2)))
        await asyncio.sleep(4)
        desc = await handle.describe()
        assert desc.info.num_actions == 2
        assert desc.schedule.state.remaining_actions == 0
        assert desc.info.next_action_times == []
        assert len(await started(client, schedule_id)) == 2
        await handle.delete()


async def test_trigger_backfill_pause_and_unpause(client: Client, task_queue: str) -> None:
    schedule_id = unique_id("sched-manual")
    daily = ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(0)],
                                                         minute=[ScheduleRange(0)],
                                                         second=[ScheduleRange(0)])])
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledEcho", task_queue, f"{schedule_id}-wf", "m"),
                                  spec=daily, state=ScheduleState(paused=True, note="created paused")))
        await handle.trigger()  # manual actions ignore the pause
        await eventually(lambda: started(client, schedule_id), lambda rs: len(rs) == 1, "trigger")
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=start + timedelta(days=2),
                                               overlap=ScheduleOverlapPolicy.ALLOW_ALL))
        runs = await eventually(lambda: started(client, schedule_id), lambda rs: len(rs) == 4,
                                "the backfill's three actions")
        ids = sorted(r.id for r in runs)
        assert ids[:3] == [f"{schedule_id}-wf-2024-01-0{d}T00:00:00Z" for d in (1, 2, 3)]
        await handle.unpause(note="go")
        desc = await handle.describe()
        assert not desc.schedule.state.paused and desc.schedule.state.note == "go"
        await handle.pause(note="stop")
        desc = await handle.describe()
        assert desc.schedule.state.paused and desc.schedule.state.note == "stop"
        assert desc.info.num_actions == 4
        await handle.delete()


async def test_update_changes_the_next_actions(client: Client, task_queue: str) -> None:
    schedule_id = unique_id("sched-update")
    async with worker(client, task_queue):
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action("ScheduledEcho", task_queue, f"{schedule_id}-wf", "before"),
                                  spec=every(3600)))

        async def new_arg(input: ScheduleUpdateInput) -> ScheduleUpdate:
            schedule = input.description.schedule
            assert isinstance(schedule.action, ScheduleActionStartWorkflow)
            schedule.action.args = ["after"]
            schedule.spec = every(1)
            return ScheduleUpdate(schedule=schedule)

        await handle.update(new_arg)
        desc = await eventually(handle.describe, lambda d: d.info.num_actions >= 1, "an action")
        assert desc.schedule.spec.intervals == [ScheduleIntervalSpec(every=SECOND)]
        recent = desc.info.recent_actions[0].action
        run = client.get_workflow_handle(recent.workflow_id, run_id=recent.first_execution_run_id)
        assert await run.result() == "echo after"
        await handle.delete()


async def test_list_matching_times_and_canonical_spec(client: Client, task_queue: str) -> None:
    schedule_id = unique_id("sched-times")
    handle = await client.create_schedule(
        schedule_id, Schedule(action=action("ScheduledEcho", task_queue, "times"),
                              spec=ScheduleSpec(cron_expressions=["0 12 * * MON"]),
                              state=ScheduleState(paused=True)))
    request = ListScheduleMatchingTimesRequest(namespace="default", schedule_id=schedule_id)
    request.start_time.FromDatetime(datetime(2024, 1, 1))
    request.end_time.FromDatetime(datetime(2024, 1, 31))
    response = await client.workflow_service.list_schedule_matching_times(request)
    # Mondays of January 2024, at noon UTC (worked out by hand: 1 January 2024 is a Monday).
    assert [t.ToDatetime() for t in response.start_time] == [
        datetime(2024, 1, d, 12) for d in (1, 8, 15, 22, 29)]
    desc = await handle.describe()
    # The cron string comes back as a structured calendar, as Temporal canonicalizes it.
    assert desc.schedule.spec.cron_expressions == []
    raw = desc.raw_description.schedule.spec
    assert len(raw.structured_calendar) == 1
    assert [(r.start, r.end) for r in raw.structured_calendar[0].hour] == [(12, 12)]
    assert [(r.start, r.end) for r in raw.structured_calendar[0].day_of_week] == [(1, 1)]
    await handle.delete()


@pytest.mark.parametrize("spec,start,end,expected", [
    # Every 90 minutes from the epoch, shifted by 15: 2024-01-01T00:00Z is a multiple of 90 min.
    (ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=90),
                                                  offset=timedelta(minutes=15))]),
     datetime(2024, 1, 1), datetime(2024, 1, 1, 6),
     [datetime(2024, 1, 1, h, m) for h, m in ((0, 15), (1, 45), (3, 15), (4, 45))]),
    # 09:30 on weekdays in New York across the start of daylight saving time (10 March 2024):
    # 14:30Z while on EST, 13:30Z once on EDT; no action on the weekend.
    (ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(9)], minute=[ScheduleRange(30)],
                                                  day_of_week=[ScheduleRange(1, 5)])],
                  time_zone_name="America/New_York"),
     datetime(2024, 3, 8), datetime(2024, 3, 13, 23),
     [datetime(2024, 3, 8, 14, 30), datetime(2024, 3, 11, 13, 30), datetime(2024, 3, 12, 13, 30),
      datetime(2024, 3, 13, 13, 30)]),
    # The last day of February, leap year or not, by a cron string's day-of-month range.
    (ScheduleSpec(cron_expressions=["0 0 28-29 2 *"]),
     datetime(2023, 1, 1), datetime(2024, 12, 31),
     [datetime(2023, 2, 28), datetime(2024, 2, 28), datetime(2024, 2, 29)]),
], ids=["interval-with-offset", "calendar-new-york-dst", "cron-february-end"])
async def test_matching_times_of_other_spec_forms(client: Client, task_queue: str, spec,
                                                  start, end, expected) -> None:
    schedule_id = unique_id("sched-forms")
    handle = await client.create_schedule(
        schedule_id, Schedule(action=action("ScheduledEcho", task_queue, "forms"), spec=spec,
                              state=ScheduleState(paused=True)))
    request = ListScheduleMatchingTimesRequest(namespace="default", schedule_id=schedule_id)
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(end)
    response = await client.workflow_service.list_schedule_matching_times(request)
    assert [t.ToDatetime() for t in response.start_time] == expected
    await handle.delete()


async def test_invalid_schedules_are_refused(client: Client, task_queue: str) -> None:
    with pytest.raises(RPCError) as caught:
        await client.create_schedule(
            unique_id("bad"), Schedule(action=action("ScheduledEcho", task_queue, "bad"),
                                       spec=ScheduleSpec(cron_expressions=["61 * * * *"])))
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("Invalid schedule spec: ")
    with pytest.raises(RPCError) as caught:
        await client.get_schedule_handle(unique_id("missing")).pause()
    assert caught.value.status == RPCStatusCode.NOT_FOUND


def run_cli(server, *args: str) -> str:
    out = subprocess.run(["build/venv/bin/temporal", *args, "--address", server.address],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_cli_schedule_commands(server, client: Client, task_queue: str) -> None:
    schedule_id = unique_id("cli-sched")
    loop = asyncio.get_running_loop()

    def cli(*args: str) -> str:
        return run_cli(server, *args)

    await loop.run_in_executor(None, lambda: cli(
        "schedule", "create", "--schedule-id", schedule_id, "--interval", "24h",
        "--workflow-id", f"{schedule_id}-wf", "--task-queue", task_queue,
        "--type", "ScheduledEcho"))
    described = json.loads(await loop.run_in_executor(
        None, lambda: cli("schedule", "describe", "--schedule-id", schedule_id, "-o", "json")))
    assert described["schedule"]["action"]["startWorkflow"]["workflowType"]["name"] == "ScheduledEcho"
    listed = await loop.run_in_executor(None, lambda: cli("schedule", "list"))
    assert schedule_id in listed
    await loop.run_in_executor(None, lambda: cli(
        "schedule", "toggle", "--schedule-id", schedule_id, "--pause", "--reason", "cli pause"))
    desc = await client.get_schedule_handle(schedule_id).describe()
    assert desc.schedule.state.paused and desc.schedule.state.note == "cli pause"
    await loop.run_in_executor(None, lambda: cli("schedule", "trigger", "--schedule-id", schedule_id))
    await eventually(lambda: started(client, schedule_id), lambda rs: len(rs) == 1, "the trigger")
    await loop.run_in_executor(None, lambda: cli("schedule", "delete", "--schedule-id", schedule_id))
    with pytest.raises(RPCError):
        await client.get_schedule_handle(schedule_id).describe()
    for r in await started(client, schedule_id):
        await client.get_workflow_handle(r.id, run_id=r.run_id).terminate("test over")
