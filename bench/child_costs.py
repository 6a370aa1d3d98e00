#!/usr/bin/env python3
"""What one child workflow costs the server: its start, its run and its completion.

Starts an Almanac daemon on SQLite and/or on a private PostgreSQL cluster (the integration
test harness), runs an in-process SDK worker against it, and measures three phases, each
its own window (bench/child_cost_workflows.py has the workflows):

- base: N ChildCostParent workflows that run no child; each returns at once (one workflow
  task). C parents are in flight at a time: each slot starts one, waits for its result,
  and takes the next.
- children: N ChildCostParent workflows, C in flight, each running K ChildCostChild
  workflows one after another (workflow.execute_child_workflow, waiting for each one's
  result before it starts the next). A child returns a value at once; every parent's
  list of results is checked.
- standalone: S ChildCostChild runs (default N*K) started by the client, C in flight: the
  same workflow as a child, without a parent, for comparison.

The cost of one child is (children - base) / (N*K): both phases start, run and close the
same N parents at the same concurrency, so what the parents cost without a child (their
start, first task and close) cancels, and what remains is everything the K children
added: the parent's command and records (StartChildWorkflowExecutionInitiated, the
ChildWorkflowExecutionStarted and ...Completed events and the workflow tasks they wake),
the transfer tasks that start the child and report its close, and the child's own run.
Children run in sequence so that a parent waits on one child at a time, as in the usual
use; K > 1 spreads the parent's fixed cost over more children, and its later children
show what a child costs a parent whose history has grown.

The measurement machinery is bench/failure_costs.py's: the daemon's CPU from /proc, on
PostgreSQL the cluster's CPU and the pg_stat_database / pg_stat_user_tables deltas, read
after the counters settle (~11 s a reading). Each phase's window stays open for --drain
seconds after its last workflow returned, so that the workflow task and sticky timeouts
it armed fire (as no-ops) inside it; "before timers" is the CPU up to the last result.
An unmeasured warm-up (a few parents with K children) comes first, then an idle window
that measures what the daemon does on its own.

At the end every parent's and every child's history is read: the events and workflow
tasks per child (the parent's share, from the difference with the base parents, and the
child's own), and the latency of each child from the parent's
StartChildWorkflowExecutionInitiated event to its ChildWorkflowExecutionStarted and to
its ChildWorkflowExecutionCompleted (server event times). The exit status is 1 if any
workflow failed or returned something else, or a child's history is not the expected
shape.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

import failure_costs as fc  # also puts tests/integration (the harness) on sys.path
import failure_workflows as fw
from child_cost_workflows import (
    TASK_TIMEOUT,
    ChildCostChild,
    ChildCostParent,
    child_id,
    child_result,
)
from load import CLK_TCK, keep_stdout_for_report, percentile_ms, process_cpu_s

HISTORY_CONCURRENCY = 10  # history reads in flight at the end (outside every window)


@dataclass
class Phase:
    name: str
    workflows: list[str]  # the ids the driver started (parents, or standalone runs)
    latencies: list[float]  # per started workflow: start_workflow until result()
    window: fc.Window
    driver_cpu_s: float


# The phases -------------------------------------------------------------------------------


async def run_workflows(
    client: Client, task_queue: str, ids: list[str], concurrency: int,
    start: Callable[[int, str], Awaitable[Any]], expected: Callable[[int], Any], what: str,
) -> list[float]:
    """Starts workflow i (id ids[i]) with `start`, waits for its result and checks it
    against expected(i); `concurrency` in flight. Returns the latencies (s)."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        began = time.perf_counter()
        handle = await start(i, ids[i])
        result = await handle.result()
        latencies.append(time.perf_counter() - began)
        if result != expected(i):
            raise RuntimeError(f"{ids[i]} returned {result!r}, expected {expected(i)!r}")

    await fc.in_flight(len(ids), concurrency, one, what)
    return latencies


def parent_starter(client: Client, task_queue: str,
                   children: int) -> Callable[[int, str], Awaitable[Any]]:
    def start(i: int, wid: str) -> Awaitable[Any]:
        return client.start_workflow(ChildCostParent.run, args=[i, children], id=wid,
                                     task_queue=task_queue, task_timeout=TASK_TIMEOUT)
    return start


def standalone_starter(client: Client, task_queue: str) -> Callable[[int, str], Awaitable[Any]]:
    def start(i: int, wid: str) -> Awaitable[Any]:
        return client.start_workflow(ChildCostChild.run, args=[i, 0], id=wid,
                                     task_queue=task_queue, task_timeout=TASK_TIMEOUT)
    return start


# History accounting ---------------------------------------------------------------------------


@dataclass
class Histories:
    """What the histories of one phase's workflows hold."""

    events: int = 0
    workflow_tasks: int = 0
    child_events: int = 0  # in the children's own histories
    child_workflow_tasks: int = 0
    children: int = 0
    to_started: list[float] = field(default_factory=list)  # s, per child
    to_completed: list[float] = field(default_factory=list)
    child_run: list[float] = field(default_factory=list)  # child's started to its close


def _time(event: Any) -> float:
    return event.event_time.ToNanoseconds() / 1e9


async def read_histories(client: Client, ids: list[str], children: int) -> Histories:
    """Reads the histories of the workflows `ids` and, if they are parents of `children`
    children each, of the children; raises if a parent did not record exactly `children`
    children started and completed, or a child's history is not one task and a result."""
    h = Histories()
    parent_events: list[Any] = [None] * len(ids)

    async def read_parent(i: int) -> None:
        parent_events[i] = (await client.get_workflow_handle(ids[i]).fetch_history()).events

    await fc.in_flight(len(ids), HISTORY_CONCURRENCY, read_parent, "history reads")
    for wid, events in zip(ids, parent_events):
        h.events += len(events)
        initiated: dict[int, float] = {}
        started: dict[int, float] = {}
        completed: dict[int, float] = {}
        for e in events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                h.workflow_tasks += 1
            elif e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                initiated[e.event_id] = _time(e)
            elif e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                a = e.child_workflow_execution_started_event_attributes
                started[a.initiated_event_id] = _time(e)
            elif e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
                a = e.child_workflow_execution_completed_event_attributes
                completed[a.initiated_event_id] = _time(e)
        if not (len(initiated) == len(started) == len(completed) == children
                and set(initiated) == set(started) == set(completed)):
            raise RuntimeError(f"{wid}: {len(initiated)} children initiated, {len(started)} "
                               f"started, {len(completed)} completed; expected {children}")
        for eid, t in initiated.items():
            h.to_started.append(started[eid] - t)
            h.to_completed.append(completed[eid] - t)
        h.children += children

    parent_of = {child_id(wid, k): wid for wid in ids for k in range(children)}
    child_ids = list(parent_of)
    child_events: list[Any] = [None] * len(child_ids)

    async def read_child(i: int) -> None:
        child_events[i] = (await client.get_workflow_handle(child_ids[i]).fetch_history()).events

    if child_ids:
        await fc.in_flight(len(child_ids), HISTORY_CONCURRENCY, read_child, "history reads")
    for cid, events in zip(child_ids, child_events):
        tasks = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events)
        last = events[-1].event_type
        if tasks != 1 or last != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            raise RuntimeError(f"{cid}: {tasks} workflow tasks, last event "
                               f"{EventType.Name(last)}")
        start = events[0].workflow_execution_started_event_attributes
        if start.parent_workflow_execution.workflow_id != parent_of[cid]:
            raise RuntimeError(f"{cid}: its start names parent "
                               f"{start.parent_workflow_execution.workflow_id!r}")
        h.child_events += len(events)
        h.child_workflow_tasks += tasks
        h.child_run.append(_time(events[-1]) - _time(events[0]))
    return h


# The measurement ------------------------------------------------------------------------------


async def measure_children(
    args: argparse.Namespace, store: str, server: fc.AlmanacServer,
    cluster: fc.PostgresCluster | None,
) -> dict[str, Any]:
    probe = fc.daemon_probe(server, cluster)
    health = fc.daemon_health(server)
    run_id = uuid.uuid4().hex[:10]
    task_queue = f"child-costs-{run_id}"
    client = await Client.connect(server.address, namespace=args.namespace)
    worker = fc.bench_worker(client, task_queue, workflows=[ChildCostParent, ChildCostChild])
    k, n = args.children, args.parents

    def parents_expected(children: int) -> Callable[[int], Any]:
        return lambda i: [child_result(i, j) for j in range(children)]

    plan: list[tuple[str, list[str], Callable[[int, str], Awaitable[Any]], Callable[[int], Any],
                     str]] = [
        ("base", [f"base-{run_id}-{i}" for i in range(n)], parent_starter(client, task_queue, 0),
         parents_expected(0), f"{n} parents without a child"),
        ("children", [f"parent-{run_id}-{i}" for i in range(n)],
         parent_starter(client, task_queue, k), parents_expected(k),
         f"{n} parents with {k} {'child' if k == 1 else 'children'} each, one after another"),
    ]
    if args.standalone:
        plan.append(("standalone", [f"alone-{run_id}-{i}" for i in range(args.standalone)],
                     standalone_starter(client, task_queue), lambda i: child_result(i, 0),
                     f"{args.standalone} child workflows started by the client"))
    phases: dict[str, Phase] = {}
    async with worker:
        if args.warmup:
            fc.log(f"warm-up: {args.warmup} parents with {k} children each (not measured)")
            await fc.within(run_workflows(
                client, task_queue, [f"warm-{run_id}-{i}" for i in range(args.warmup)],
                args.concurrency, parent_starter(client, task_queue, k), parents_expected(k),
                "warm-up parents"), health)
            await fc.drain(args.drain, "the warm-up")
        if probe.pg is not None:
            fc.log("waiting for PostgreSQL's statistics to settle before each reading "
                   f"(~{fc.STATS_QUIET_S:g} s each)")
        snap = await probe.snapshot()
        idle, idle_pg_s, snap = await fc.measure_idle(probe, snap, args.idle)

        for name, ids, start, expected, what in plan:
            fc.log(f"{name}: {what}, {args.concurrency} in flight")
            driver0 = process_cpu_s(os.getpid())
            cpu0 = probe.cpu()
            latencies = await fc.within(run_workflows(
                client, task_queue, ids, args.concurrency, start, expected, what), health)
            done = probe.cpu()
            driver1 = process_cpu_s(os.getpid())
            await fc.drain(args.drain, f"the {name} phase")
            cpu1 = probe.cpu()
            snap_next = await probe.snapshot()
            phases[name] = Phase(name, ids, latencies,
                                 fc.Probe.window(len(ids), cpu0, cpu1, snap, snap_next, done),
                                 driver1 - driver0)
            snap = snap_next

        fc.log("reading the histories")
        histories = {
            "base": await read_histories(client, phases["base"].workflows, 0),
            "children": await read_histories(client, phases["children"].workflows, k),
        }
        if "standalone" in phases:
            histories["standalone"] = await read_histories(
                client, phases["standalone"].workflows, 0)

    base, kids = phases["base"], phases["children"]
    hb, hk = histories["base"], histories["children"]
    children = n * k
    per_child = fc.per_op(kids.window, children, minus=base.window)
    per_child["driver_cpu_us"] = (kids.driver_cpu_s - base.driver_cpu_s) * 1e6 / children
    per_child["parent_events"] = (hk.events - hb.events) / children
    per_child["child_events"] = hk.child_events / children
    per_child["events"] = per_child["parent_events"] + per_child["child_events"]
    per_child["parent_workflow_tasks"] = (hk.workflow_tasks - hb.workflow_tasks) / children
    per_child["child_workflow_tasks"] = hk.child_workflow_tasks / children
    per_child["workflow_tasks"] = (per_child["parent_workflow_tasks"]
                                   + per_child["child_workflow_tasks"])
    for key, values in (("to_started", hk.to_started), ("to_completed", hk.to_completed),
                        ("child_run", hk.child_run)):
        values.sort()
        per_child[f"{key}_p50_ms"] = percentile_ms(values, 50)
        per_child[f"{key}_p99_ms"] = percentile_ms(values, 99)

    def per_workflow(p: Phase, h: Histories) -> dict[str, Any]:
        costs = fc.per_op(p.window, len(p.workflows))
        costs["driver_cpu_us"] = p.driver_cpu_s * 1e6 / len(p.workflows)
        costs["events"] = h.events / len(p.workflows)
        costs["workflow_tasks"] = h.workflow_tasks / len(p.workflows)
        latencies = sorted(p.latencies)
        costs["p50_ms"] = percentile_ms(latencies, 50)
        costs["p99_ms"] = percentile_ms(latencies, 99)
        return costs

    report: dict[str, Any] = {
        "store": store,
        "clk_tck": CLK_TCK,
        "params": {"parents": n, "children": k, "standalone": args.standalone,
                   "concurrency": args.concurrency, "warmup": args.warmup,
                   "idle_s": args.idle, "drain_s": args.drain},
        "idle": fc.idle_report(idle, idle_pg_s),
        "children_measured": children,
        "per_child": per_child,
        "per_parent_without_child": per_workflow(base, hb),
        "per_parent_with_children": per_workflow(kids, hk),
        "wall_s": {name: p.window.wall_s for name, p in phases.items()},
        "windows": {name: fc.window_dict(p.window) for name, p in phases.items()},
    }
    if "standalone" in phases:
        report["per_standalone_run"] = per_workflow(phases["standalone"],
                                                    histories["standalone"])
    return report


# Output -----------------------------------------------------------------------------------


def print_report(r: dict[str, Any]) -> None:
    p, c = r["params"], r["per_child"]
    print(f"== {r['store']} ==")
    print(f"{p['parents']} parents without a child in {r['wall_s']['base']:.2f} s; "
          f"{p['parents']} parents x {p['children']} "
          f"{'child' if p['children'] == 1 else 'children'} in "
          f"{r['wall_s']['children']:.2f} s"
          + (f"; {p['standalone']} standalone runs in {r['wall_s']['standalone']:.2f} s"
             if "standalone" in r["wall_s"] else "")
          + f"; {p['concurrency']} in flight")
    fc.print_idle(r["idle"], p["idle_s"])
    cols = [("per child", c), ("per parent, no child", r["per_parent_without_child"])]
    if "per_standalone_run" in r:
        cols.append(("per standalone run", r["per_standalone_run"]))
    fc.print_cost_table(
        cols,
        extra_rows=(("driver+worker CPU (us)", "driver_cpu_us", 0),
                    ("latency p50 (ms)", "p50_ms", 2), ("latency p99 (ms)", "p99_ms", 2),
                    ("history events", "events", 2),
                    ("  in the parent", "parent_events", 2),
                    ("  in the child", "child_events", 2),
                    ("workflow tasks", "workflow_tasks", 2),
                    ("  of the parent", "parent_workflow_tasks", 2),
                    ("  of the child", "child_workflow_tasks", 2)),
    )
    print(f"per child, from the parent's initiated event (p50 / p99): to started "
          f"{fc._f(c['to_started_p50_ms'])} / {fc._f(c['to_started_p99_ms'])} ms, to completed "
          f"{fc._f(c['to_completed_p50_ms'])} / {fc._f(c['to_completed_p99_ms'])} ms; the "
          f"child's own run (its first to last event) {fc._f(c['child_run_p50_ms'])} / "
          f"{fc._f(c['child_run_p99_ms'])} ms")
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_drain = max(TASK_TIMEOUT, fw.STICKY_TIMEOUT).total_seconds() + 1
    parser = argparse.ArgumentParser(
        description="Measure the server cost of one child workflow (its start, run and "
        "completion) on SQLite and PostgreSQL.")
    fc.add_common_args(parser, default_drain, "seconds each phase's window stays open after "
                       "its last result, for the timeouts it armed to fire")
    parser.add_argument("-n", "--parents", type=int, default=100,
                        help="parents in the base phase, and in the children phase "
                        "(default 100)")
    parser.add_argument("-k", "--children", type=int, default=4,
                        help="children each parent of the children phase runs, one after "
                        "another (default 4)")
    parser.add_argument("--standalone", type=int, default=None,
                        help="child workflows started by the client, for comparison "
                        "(default: n*k; 0 skips them)")
    parser.add_argument("-c", "--concurrency", type=int, default=10,
                        help="parents (or standalone runs) in flight (default 10)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="unmeasured parents with k children each, run first (default 10)")
    args = parser.parse_args(argv)
    if args.standalone is None:
        args.standalone = args.parents * args.children
    if (min(args.parents, args.children, args.concurrency) < 1 or args.standalone < 0
            or args.warmup < 0 or args.idle <= 0):
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fc.LOG_NAME = "child-costs"
    keep_stdout_for_report()
    return fc.run_stores(args, measure_children, print_report)


if __name__ == "__main__":
    sys.exit(main())
