"""Schedules survive kill -9: fifty schedules fire every second while the daemon is killed
again and again for about a minute. Afterwards each schedule's started workflows have one id
per second from its first action to its last, none doubled (each action counted once) and
none lost: the default catchup window (a year) takes the seconds the daemon was down when it
comes back. A schedule whose catchup window (10 s, the minimum) is shorter than a downtime
skips the actions it missed and counts them, as Temporal does. Needs the Almanac daemon
(skipped with ALMANAC_TEST_ADDRESS)."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.worker import Worker

from helpers import bounded, unique_id

SCHEDULES = 50
KILLS = 6
SECOND = datetime.timedelta(seconds=1)


@workflow.defn(name="ScheduledTick")
class ScheduledTick:
    @workflow.run
    async def run(self) -> str:
        return workflow.info().workflow_id


def every_second(task_queue: str, workflow_id: str, **policy) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow("ScheduledTick", id=workflow_id, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SECOND)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, **policy),
    )


async def started_ids(client: Client, schedule_id: str) -> list[str]:
    ids = []
    async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'"):
        ids.append(w.id)
    return ids


def action_time(workflow_id: str) -> datetime.datetime:
    return datetime.datetime.strptime(workflow_id[-20:], "%Y-%m-%dT%H:%M:%SZ")


async def settle(client: Client, schedule_id: str) -> tuple[list[str], int]:
    """Pauses the schedule and returns its started ids and its action count once the list
    shows every action the schedule counted."""
    handle = client.get_schedule_handle(schedule_id)
    await handle.pause(note="test over")
    deadline = time.monotonic() + 30
    while True:
        desc = await handle.describe()
        ids = await started_ids(client, schedule_id)
        if len(ids) >= desc.info.num_actions or time.monotonic() > deadline:
            return ids, desc.info.num_actions
        await asyncio.sleep(0.5)


@pytest.mark.deadline(300)
async def test_kill9_repeatedly_while_fifty_schedules_fire_every_second(server, task_queue):
    if server.store == "external":
        pytest.skip("needs the Almanac daemon")
    client = await Client.connect(server.address)
    async with Worker(client, task_queue=task_queue, workflows=[ScheduledTick],
                      max_concurrent_workflow_tasks=100):
        ids = [unique_id("crash-sched") for _ in range(SCHEDULES)]
        await bounded(client.create_schedule(i, every_second(task_queue, f"{i}-wf")) for i in ids)
        for _ in range(KILLS):
            await asyncio.sleep(7)
            server.kill9()
            await asyncio.sleep(1)  # down for a moment: those seconds must be caught up
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
            client = await Client.connect(server.address)
        await asyncio.sleep(3)
        results = await bounded(settle(client, i) for i in ids)
    for schedule_id, (started, counted) in zip(ids, results):
        times = sorted(action_time(w) for w in started)
        assert len(set(started)) == len(started), schedule_id  # no id twice
        assert counted == len(started), (schedule_id, counted, len(started))  # no action doubled
        # One action per second from the first to the last: none skipped.
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
        assert all(g == 1 for g in gaps), (schedule_id, [g for g in gaps if g != 1])
        assert len(times) >= 40, (schedule_id, len(times))  # it ran through the kills


@pytest.mark.deadline(120)
async def test_downtime_longer_than_the_catchup_window_skips_missed_actions(server, task_queue):
    if server.store == "external":
        pytest.skip("needs the Almanac daemon")
    client = await Client.connect(server.address)
    schedule_id = unique_id("catchup")
    async with Worker(client, task_queue=task_queue, workflows=[ScheduledTick]):
        await client.create_schedule(
            schedule_id, every_second(task_queue, f"{schedule_id}-wf",
                                      catchup_window=datetime.timedelta(seconds=10)))
        await asyncio.sleep(3)
        server.kill9()
        down_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        await asyncio.sleep(16)
        await asyncio.get_running_loop().run_in_executor(None, server.restart)
        client = await Client.connect(server.address)
        await asyncio.sleep(3)
        started, counted = await settle(client, schedule_id)
        desc = await client.get_schedule_handle(schedule_id).describe()
    times = sorted(action_time(w) for w in started)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    # The down time beyond the last 10 s was skipped: one gap of about 16 - 10 seconds.
    big = [g for g in gaps if g > 1]
    assert len(big) == 1 and 4 <= big[0] <= 9, gaps
    missed = desc.info.num_actions_missed_catchup_window
    assert 4 <= missed <= 8, missed
    assert big[0] - 1 == missed, (gaps, missed)
    assert counted == len(started)
    assert any(t < down_at for t in times) and any(t > down_at for t in times)
    await client.get_schedule_handle(schedule_id).delete()
