#!/usr/bin/env python3
"""What one signal, one query and one update cost the server.

Starts an Almanac daemon on SQLite and/or on a private PostgreSQL cluster (the integration
test harness), runs an in-process SDK worker against it, and starts W CounterWorkflows
(bench/message_cost_workflows.py): each counts the `bump` signals and accepted `add` updates it
receives, answers the `value` query with the count, and returns it when told to finish. The
driver then runs four measured phases, each N operations round-robin over the workflows with
C in flight, each its own window:

- signals: handle.signal(bump);
- queries: handle.query(value), every answer checked against what the workflow was sent;
- updates: handle.execute_update(add, 1), every answer checked (per workflow, the answers
  are the counts that follow the one it had);
- rejected updates: handle.execute_update(add, 0), which the workflow's validator rejects;
  each must fail, and the phase must write no history event.

Before them, an unmeasured warm-up sends each workflow one of each (it fills the worker's
cache and the sticky queues), and an idle window measures what the daemon does on its own.
Afterwards every workflow is signalled to finish and must return the signals plus the
accepted updates it was sent; the exit status is 1 otherwise.

The measurement machinery is bench/failure_costs.py's: the daemon's CPU from /proc, on
PostgreSQL the cluster's CPU and the pg_stat_database / pg_stat_user_tables deltas, read
after the counters settle (~11 s a reading). As there, each phase's window stays open for
--drain seconds after its last operation returned, so that the workflow task timeouts it
armed fire (as no-ops) inside it; "before timers" is the CPU up to the last answer. The
histories are read at the end and their events assigned to the phase whose window holds
their time, which gives the history events and workflow tasks each operation cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

import failure_costs as fc  # also puts tests/integration (the harness) on sys.path
import failure_workflows as fw
from load import CLK_TCK, keep_stdout_for_report, percentile_ms, process_cpu_s
from message_cost_workflows import CounterWorkflow

KINDS = ("signal", "query", "update", "rejected_update")
NAMES = {"signal": "signals", "query": "queries", "update": "updates",
         "rejected_update": "rejected updates"}
LABELS = {"signal": "per signal", "query": "per query", "update": "per update",
          "rejected_update": "per rejected update"}
# History events counted per phase, besides the total.
EVENT_KINDS = {
    "workflow_tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "signaled": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    "update_accepted": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    "update_completed": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}


@dataclass
class Counter:
    """One workflow and what the driver sent it."""

    handle: WorkflowHandle[Any, Any]
    signals: int = 0
    updates: int = 0  # accepted
    update_answers: list[int] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.signals + self.updates


# The operations: each sends one message to a workflow and checks the answer ----------------


async def send_signal(w: Counter) -> None:
    await w.handle.signal(CounterWorkflow.bump)
    w.signals += 1


async def send_query(w: Counter) -> None:
    expected = w.expected  # nothing else is sent to a workflow while it is queried
    value = await w.handle.query(CounterWorkflow.value)
    if value != expected:
        raise RuntimeError(f"{w.handle.id}: query answered {value}, expected {expected}")


async def send_update(w: Counter) -> None:
    w.update_answers.append(await w.handle.execute_update(CounterWorkflow.add, 1))
    w.updates += 1


async def send_rejected_update(w: Counter) -> None:
    try:
        value = await w.handle.execute_update(CounterWorkflow.add, 0)
    except WorkflowUpdateFailedError:
        return
    raise RuntimeError(f"{w.handle.id}: an update of 0 was accepted (answered {value})")


OPS: dict[str, Callable[[Counter], Awaitable[None]]] = {
    "signal": send_signal, "query": send_query, "update": send_update,
    "rejected_update": send_rejected_update,
}


async def run_ops(kind: str, counters: list[Counter], count: int,
                  concurrency: int) -> list[float]:
    """`count` operations of `kind`, operation i to workflow i mod W, `concurrency` in
    flight; returns their latencies (s). Raises if any failed."""
    op = OPS[kind]
    latencies: list[float] = []

    async def one(i: int) -> None:
        began = time.perf_counter()
        await op(counters[i % len(counters)])
        latencies.append(time.perf_counter() - began)

    await fc.in_flight(count, concurrency, one, NAMES[kind])
    return latencies


def check_update_answers(counters: list[Counter], before: list[tuple[int, int]]) -> None:
    """Per workflow, the updates of the phase must have answered the counts that follow the
    one it had (`before`: its expected count and answers so far), each once."""
    for w, (base, answered) in zip(counters, before):
        got = sorted(w.update_answers[answered:])
        if got != list(range(base + 1, base + 1 + len(got))):
            raise RuntimeError(f"{w.handle.id}: updates answered {got}, expected the counts "
                               f"from {base + 1} on")


# History accounting ---------------------------------------------------------------------------


async def history_counts(counters: list[Counter],
                         phases: dict[str, tuple[float, float]]) -> dict[str, dict[str, int]]:
    """The events of every workflow's history, by phase (the window holding their time)."""
    counts = {kind: dict.fromkeys(("events", *EVENT_KINDS), 0) for kind in phases}
    for w in counters:
        history = await w.handle.fetch_history()
        for event in history.events:
            t = event.event_time.ToNanoseconds() / 1e9
            kind = next((k for k, (t0, t1) in phases.items() if t0 <= t < t1), None)
            if kind is None:
                continue  # set-up, warm-up, finish
            counts[kind]["events"] += 1
            for name, event_type in EVENT_KINDS.items():
                if event.event_type == event_type:
                    counts[kind][name] += 1
    return counts


# The measurement ------------------------------------------------------------------------------


@dataclass
class Phase:
    kind: str
    ops: int
    window: fc.Window
    latencies: list[float]
    driver_cpu_s: float
    wall_clock: tuple[float, float]  # time.time() at its start and at the end of its window


async def measure_messages(
    args: argparse.Namespace, store: str, server: fc.AlmanacServer,
    cluster: fc.PostgresCluster | None,
) -> dict[str, Any]:
    probe = fc.daemon_probe(server, cluster)
    health = fc.daemon_health(server)
    run_id = uuid.uuid4().hex[:10]
    task_queue = f"message-costs-{run_id}"
    client = await Client.connect(server.address, namespace=args.namespace)
    worker = fc.bench_worker(client, task_queue, workflows=[CounterWorkflow])
    sizes = {"signal": args.ops, "query": args.ops, "update": args.ops,
             "rejected_update": args.rejected}
    phases: list[Phase] = []
    async with worker:
        fc.log(f"starting {args.workflows} workflows; warm-up: one signal, query, update and "
               "rejected update each (not measured)")
        counters = [
            Counter(await client.start_workflow(
                CounterWorkflow.run, id=f"counter-{run_id}-{i}", task_queue=task_queue,
                task_timeout=fw.WORKFLOW_TASK_TIMEOUT))
            for i in range(args.workflows)
        ]
        if args.pin_run:
            for w in counters:
                w.handle = client.get_workflow_handle_for(
                    CounterWorkflow.run, w.handle.id, run_id=w.handle.result_run_id)
        for kind in KINDS:
            for _ in range(args.warmup):
                await fc.within(run_ops(kind, counters, len(counters), args.concurrency),
                                health)
        await fc.drain(args.drain, "the warm-up")
        if probe.pg is not None:
            fc.log("waiting for PostgreSQL's statistics to settle before each reading "
                   f"(~{fc.STATS_QUIET_S:g} s each)")
        snap = await probe.snapshot()
        idle, idle_pg_s, snap = await fc.measure_idle(probe, snap, args.idle)

        for kind in KINDS:
            count = sizes[kind]
            if count == 0:
                continue
            fc.log(f"{NAMES[kind]}: {count} over {len(counters)} workflows, "
                   f"{args.concurrency} in flight")
            before = [(w.expected, len(w.update_answers)) for w in counters]
            t0, driver0 = time.time(), process_cpu_s(os.getpid())
            cpu0 = probe.cpu()
            latencies = await fc.within(
                run_ops(kind, counters, count, args.concurrency), health)
            done = probe.cpu()
            driver1 = process_cpu_s(os.getpid())
            if kind == "update":
                check_update_answers(counters, before)
            await fc.drain(args.drain, f"the {NAMES[kind]}")
            cpu1 = probe.cpu()
            t1 = time.time()
            snap_next = await probe.snapshot()
            phases.append(Phase(kind, count, fc.Probe.window(count, cpu0, cpu1, snap,
                                                             snap_next, done),
                                latencies, driver1 - driver0, (t0, t1)))
            snap = snap_next

        fc.log("finishing the workflows and checking their results")
        for w in counters:
            await w.handle.signal(CounterWorkflow.finish)
        results = await fc.within(asyncio.gather(*(w.handle.result() for w in counters)),
                                  health)
        wrong = [f"{w.handle.id} returned {r}, expected {w.expected}"
                 for w, r in zip(counters, results) if r != w.expected]
        if wrong:
            raise RuntimeError(f"{len(wrong)} of {len(counters)} workflows returned a wrong "
                               f"count; first: {wrong[0]}")
        events = await history_counts(counters, {p.kind: p.wall_clock for p in phases})

    if events.get("rejected_update", {}).get("events"):
        raise RuntimeError(f"rejected updates wrote {events['rejected_update']['events']} "
                           "history events")
    report: dict[str, Any] = {
        "store": store,
        "clk_tck": CLK_TCK,
        "params": {"workflows": args.workflows, "ops": args.ops, "rejected": args.rejected,
                   "concurrency": args.concurrency, "warmup": args.warmup,
                   "pin_run": args.pin_run,
                   "idle_s": args.idle, "drain_s": args.drain},
        "idle": fc.idle_report(idle, idle_pg_s),
        "checked_workflows": len(counters),
    }
    for p in phases:
        latencies = sorted(p.latencies)
        costs = fc.per_op(p.window, p.ops)
        costs["driver_cpu_us"] = p.driver_cpu_s * 1e6 / p.ops
        costs["p50_ms"] = percentile_ms(latencies, 50)
        costs["p99_ms"] = percentile_ms(latencies, 99)
        costs.update({k: v / p.ops for k, v in events[p.kind].items()})
        report[p.kind] = {
            "count": p.ops,
            "wall_s": p.window.wall_s,
            "per_s": p.ops / p.window.wall_s,
            "per_op": costs,
            "history": events[p.kind],
            "window": fc.window_dict(p.window),
        }
    return report


# Output -----------------------------------------------------------------------------------


def print_report(r: dict[str, Any]) -> None:
    p = r["params"]
    kinds = [k for k in KINDS if k in r]
    print(f"== {r['store']} ==")
    print(f"{r['checked_workflows']} workflows"
          + (" (addressed by run id)" if p["pin_run"] else "")
          + f", {p['concurrency']} operations in flight; "
          + ", ".join(f"{r[k]['count']} {NAMES[k]} in {r[k]['wall_s']:.2f} s "
                      f"({r[k]['per_s']:.0f}/s)" for k in kinds))
    fc.print_idle(r["idle"], p["idle_s"])
    fc.print_cost_table(
        [(LABELS[k], r[k]["per_op"]) for k in kinds],
        extra_rows=(("driver+worker CPU (us)", "driver_cpu_us", 0),
                    ("latency p50 (ms)", "p50_ms", 2), ("latency p99 (ms)", "p99_ms", 2),
                    ("history events", "events", 2),
                    ("workflow tasks", "workflow_tasks", 2)),
    )
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_drain = max(fw.WORKFLOW_TASK_TIMEOUT, fw.STICKY_TIMEOUT).total_seconds() + 1
    parser = argparse.ArgumentParser(
        description="Measure the server cost of one signal, one query and one update on "
        "SQLite and PostgreSQL.")
    fc.add_common_args(parser, default_drain, "seconds each phase's window stays open after "
                       "its last answer, for the timeouts it armed to fire")
    parser.add_argument("-w", "--workflows", type=int, default=50,
                        help="workflows the operations are spread over (default 50)")
    parser.add_argument("-n", "--ops", type=int, default=2000,
                        help="measured signals, and as many queries and updates (default 2000)")
    parser.add_argument("--rejected", type=int, default=None,
                        help="measured updates that the validator rejects (default: -n; "
                        "0 skips them)")
    parser.add_argument("-c", "--concurrency", type=int, default=10,
                        help="operations in flight (default 10)")
    parser.add_argument("--pin-run", action="store_true",
                        help="address each message to the run id, not to the workflow id "
                        "alone (the SDK's handle from start_workflow names no run)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured rounds of one operation of each kind per workflow "
                        "(default 1)")
    args = parser.parse_args(argv)
    if args.rejected is None:
        args.rejected = args.ops
    if (min(args.workflows, args.ops, args.concurrency) < 1 or args.rejected < 0
            or args.warmup < 0 or args.idle <= 0):
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fc.LOG_NAME = "message-costs"
    keep_stdout_for_report()
    return fc.run_stores(args, measure_messages, print_report)


if __name__ == "__main__":
    sys.exit(main())
