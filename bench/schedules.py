#!/usr/bin/env python3
"""The schedule runner's costs, on SQLite and PostgreSQL (--store sqlite|postgres|both).

Per store, on a fresh daemon (the integration harness: start-dev on a SQLite file, or schema
setup + server against a private PostgreSQL cluster):

1. Memory per idle schedule: the daemon's RSS (VmRSS) after start-up, then after creating
   --idle (10,000) schedules with hourly specs (each at its own minute; action: a workflow on
   a queue no worker polls), then after a restart and a ListSchedules page. A sleeping
   schedule is a row and a timer row, so RSS should not grow with the count.
2. Cost per action: --firing (50) schedules every second (overlap ALLOW_ALL) with a worker
   that completes a trivial workflow, for --seconds (60); then paused. Reports the daemon's
   CPU time (utime + stime) over the window per action taken (the sum of describe's
   num_actions), and the action delay: started_at - scheduled_at of describe's recent
   actions (median, p95, max).

Run it alone on the machine: `flock /tmp/almanac-build.lock build/venv/bin/python
bench/schedules.py --store both`. docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from temporalio import workflow  # noqa: E402
from temporalio.client import (  # noqa: E402
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

from harness import AlmanacServer, PostgresCluster  # noqa: E402


@workflow.defn(name="BenchTick")
class BenchTick:
    @workflow.run
    async def run(self) -> None:
        return None


def log(message: str) -> None:
    print(f"[schedules] {message}", flush=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_of(server: AlmanacServer) -> int:
    return server._process.pid  # the harness keeps the daemon's Popen


async def bounded(calls, limit: int = 16) -> list:
    slots = asyncio.Semaphore(limit)

    async def one(call):
        async with slots:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def idle_memory(server: AlmanacServer, count: int) -> dict:
    client = await Client.connect(server.address)
    base = rss_kib(pid_of(server))
    started = time.perf_counter()
    latencies: list[float] = []

    async def create(i: int) -> None:
        t0 = time.perf_counter()
        await client.create_schedule(
            f"idle-{i}",
            Schedule(action=ScheduleActionStartWorkflow("BenchTick", id=f"idle-{i}-wf",
                                                        task_queue="nobody-polls"),
                     spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(
                         minute=[ScheduleRange(i % 60)], hour=[ScheduleRange(0, 23)])])))
        latencies.append(time.perf_counter() - t0)

    await bounded(create(i) for i in range(count))
    elapsed = time.perf_counter() - started
    after = rss_kib(pid_of(server))
    server.restart()
    client = await Client.connect(server.address)
    async for _ in await client.list_schedules(page_size=100):
        break
    await client.get_schedule_handle("idle-1").describe()
    restarted = rss_kib(pid_of(server))
    latencies.sort()
    return {
        "schedules": count,
        "rss_before_kib": base,
        "rss_after_create_kib": after,
        "rss_after_restart_kib": restarted,
        "create_total_s": round(elapsed, 1),
        "create_median_ms": round(1000 * statistics.median(latencies), 2),
        "create_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


async def firing(server: AlmanacServer, count: int, seconds: int) -> dict:
    client = await Client.connect(server.address)
    # Unsandboxed: the workflow lives in this script, which the sandbox would re-import.
    async with Worker(client, task_queue="bench-tick", workflows=[BenchTick],
                      workflow_runner=UnsandboxedWorkflowRunner(),
                      max_concurrent_workflow_tasks=100):
        ids = [f"fire-{i}" for i in range(count)]
        cpu0 = cpu_seconds(pid_of(server))
        await bounded(client.create_schedule(
            i, Schedule(action=ScheduleActionStartWorkflow("BenchTick", id=f"{i}-wf",
                                                           task_queue="bench-tick"),
                        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
                        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL)))
            for i in ids)
        await asyncio.sleep(seconds)
        await bounded(client.get_schedule_handle(i).pause() for i in ids)
        cpu1 = cpu_seconds(pid_of(server))
        descs = await bounded(client.get_schedule_handle(i).describe() for i in ids)
    actions = sum(d.info.num_actions for d in descs)
    delays = sorted((a.started_at - a.scheduled_at).total_seconds() * 1000
                    for d in descs for a in d.info.recent_actions)
    return {
        "schedules": count,
        "seconds": seconds,
        "actions": actions,
        "daemon_cpu_s": round(cpu1 - cpu0, 2),
        "cpu_ms_per_action": round(1000 * (cpu1 - cpu0) / max(actions, 1), 3),
        "delay_median_ms": round(statistics.median(delays), 1),
        "delay_p95_ms": round(delays[int(0.95 * (len(delays) - 1))], 1),
        "delay_max_ms": round(delays[-1], 1),
        "note": "CPU includes starting and completing each action's workflow",
    }


def run_store(store: str, args: argparse.Namespace) -> dict:
    cluster = None
    with tempfile.TemporaryDirectory(prefix="almanac-sched-bench-") as work:
        try:
            if store == "postgres":
                cluster = PostgresCluster()
                cluster.start()
            server = AlmanacServer(store, Path(work), postgres=cluster)
            server.start()
            time.sleep(2)
            log(f"{store}: creating {args.idle} idle schedules")
            idle = asyncio.run(idle_memory(server, args.idle))
            log(f"{store}: {idle}")
            server.stop()
            server = AlmanacServer(store, Path(work) / "firing", postgres=cluster)
            server.start()
            log(f"{store}: {args.firing} schedules firing every second for {args.seconds} s")
            fire = asyncio.run(firing(server, args.firing, args.seconds))
            log(f"{store}: {fire}")
            server.stop()
            return {"store": store, "idle": idle, "firing": fire}
        finally:
            if cluster is not None:
                cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--firing", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    for store in stores:
        print(run_store(store, args), flush=True)


if __name__ == "__main__":
    main()
