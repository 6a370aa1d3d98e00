#!/usr/bin/env python3
"""Load benchmark: many short workflows (one activity each) through an Almanac daemon.

Starts the daemon itself on SQLite or on a private PostgreSQL cluster (reusing the
integration-test harness), or targets one that already runs (--address). One SDK worker
serves a single task queue; the driver keeps at most C workflows in flight, each slot doing
start_workflow + result(), and times every run from just before start_workflow until
result() returns. After an unmeasured warm-up it reports throughput, latency percentiles and
the CPU the server process burned per 1,000 workflows. Every result is checked; the exit
status is non-zero if any workflow failed or returned a wrong value.

See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from harness import AlmanacServer, PostgresCluster, almanac_binary  # noqa: E402
from load_workflow import LoadWorkflow, expected_result, load_activity  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER_READY_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


# CPU accounting from /proc ------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the comm field may hold spaces."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2 :].split()


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")  # zombie or dead: not serving
    except (FileNotFoundError, ProcessLookupError):
        return False


def tree_cpu_s(root_pid: int) -> float:
    """CPU of a process, its live children, and the children it has already reaped.

    Used for the PostgreSQL postmaster: a backend that exits moves its CPU from the live
    child into the postmaster's cutime/cstime, so the sum stays continuous.
    """
    fields = _stat_fields(root_pid)
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == root_pid:
            continue
        try:
            child = _stat_fields(int(entry))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(child[1]) == root_pid:  # field 4, ppid
            ticks += int(child[11]) + int(child[12])
    return ticks / CLK_TCK


def postmaster_pid(cluster: PostgresCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


# The worker ---------------------------------------------------------------------------------


async def serve_worker(
    address: str,
    namespace: str,
    task_queue: str,
    max_concurrent: int,
    on_ready: Callable[[], None],
    until_stopped: Callable[[], Awaitable[Any]],
) -> None:
    """Runs one SDK worker for LoadWorkflow and load_activity until `until_stopped` returns."""
    client = await Client.connect(address, namespace=namespace)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[LoadWorkflow],
        activities=[load_activity],
        max_concurrent_activities=max_concurrent,
        max_concurrent_workflow_tasks=max_concurrent,
    )
    async with worker:
        on_ready()
        await until_stopped()


def worker_process_main(
    address: str,
    namespace: str,
    task_queue: str,
    max_concurrent: int,
    status: multiprocessing.Queue,
    stop: Any,  # multiprocessing.Event
) -> None:
    """Entry point of the separate worker process (spawned, so no state is inherited)."""
    try:
        asyncio.run(
            serve_worker(
                address,
                namespace,
                task_queue,
                max_concurrent,
                on_ready=lambda: status.put(("ready", os.getpid())),
                until_stopped=lambda: asyncio.to_thread(stop.wait),
            )
        )
    except BaseException as err:  # report anything, including KeyboardInterrupt
        status.put(("error", f"{type(err).__name__}: {err}"))
        raise


class ProcessWorker:
    """The worker in its own process, so its CPU is apart from the driver's and measurable."""

    def __init__(self, address: str, namespace: str, task_queue: str, max_concurrent: int):
        ctx = multiprocessing.get_context("spawn")
        self._status = ctx.Queue()
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=worker_process_main,
            args=(address, namespace, task_queue, max_concurrent, self._status, self._stop),
            name="almanac-bench-worker",
            daemon=True,
        )

    async def start(self) -> None:
        self._process.start()
        try:
            kind, detail = await asyncio.to_thread(
                self._status.get, timeout=WORKER_READY_TIMEOUT_S
            )
        except queue.Empty:
            self.kill()
            raise RuntimeError(f"worker not ready within {WORKER_READY_TIMEOUT_S:g} s")
        if kind != "ready":
            self._process.join(5)
            raise RuntimeError(f"worker process failed to start: {detail}")

    def alive(self) -> bool:
        return self._process.is_alive()

    def cpu_s(self) -> float | None:
        return process_cpu_s(self._process.pid)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._process.join, WORKER_STOP_TIMEOUT_S)
        if self._process.is_alive():
            log("worker did not shut down in time; killing it")
            self.kill()

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


class InProcessWorker:
    """The worker as a task on the driver's event loop (--worker inproc)."""

    def __init__(self, address: str, namespace: str, task_queue: str, max_concurrent: int):
        self._args = (address, namespace, task_queue, max_concurrent)
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(
            serve_worker(*self._args, on_ready=self._ready.set, until_stopped=self._stop.wait)
        )
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            ready.cancel()
            self._task.result()  # raises the worker's error
            raise RuntimeError("worker stopped before it was ready")

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def cpu_s(self) -> float | None:
        return None  # inseparable from the driver's

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, WORKER_STOP_TIMEOUT_S)
            except TimeoutError:
                log("worker did not shut down in time; abandoning it")

    def kill(self) -> None:
        if self._task is not None:
            self._task.cancel()


# The driver ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    n: int
    latency_s: float
    error: str | None  # None: completed with the expected value


async def run_batch(
    client: Client,
    task_queue: str,
    id_prefix: str,
    count: int,
    concurrency: int,
    result_timeout_s: float,
) -> tuple[list[Outcome], float]:
    """Runs `count` workflows, at most `concurrency` at a time; returns outcomes and wall time."""
    numbers = iter(range(count))
    outcomes: list[Outcome] = []

    async def slot() -> None:
        for n in numbers:  # one shared iterator: each slot takes the next number
            started = time.perf_counter()
            error = None
            try:
                handle = await client.start_workflow(
                    LoadWorkflow.run, n, id=f"{id_prefix}-{n}", task_queue=task_queue
                )
                value = await asyncio.wait_for(handle.result(), result_timeout_s)
                if value != expected_result(n):
                    error = f"wrong result {value!r}, expected {expected_result(n)!r}"
            except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                error = f"{type(err).__name__}: {err}"
            outcomes.append(Outcome(n, time.perf_counter() - started, error))

    began = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(max(1, min(concurrency, count)))))
    return outcomes, time.perf_counter() - began


async def guarded(work: Awaitable[Any], health: Callable[[], str | None]) -> Any:
    """Awaits `work`, but gives up as soon as `health` reports a dead worker or daemon."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=0.5)
        if not task.done():
            problem = health()
            if problem:
                task.cancel()
                raise RuntimeError(problem)
    return task.result()


def percentile_ms(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list of seconds, in milliseconds."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1] * 1000


def per_thousand(cpu_s: float | None, workflows: int) -> float | None:
    if cpu_s is None or workflows == 0:
        return None
    return cpu_s * 1000 / workflows


@dataclass
class Target:
    address: str
    store: str  # sqlite, postgres, or "external"
    server_pid: int | None
    postgres_pid: int | None  # the postmaster, when this script started the cluster
    server: AlmanacServer | None


def cpu_snapshot(target: Target, worker: ProcessWorker | InProcessWorker) -> dict[str, float | None]:
    return {
        "server": process_cpu_s(target.server_pid) if target.server_pid else None,
        "postgres": tree_cpu_s(target.postgres_pid) if target.postgres_pid else None,
        "worker": worker.cpu_s(),
        "driver": process_cpu_s(os.getpid()),
    }


async def benchmark(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:10]
    task_queue = f"bench-{run_id}"
    worker_cls = ProcessWorker if args.worker == "process" else InProcessWorker
    worker = worker_cls(target.address, args.namespace, task_queue, args.worker_slots)

    def health() -> str | None:
        if not worker.alive():
            return "the worker stopped during the run"
        if target.server is not None and not target.server.is_running():
            return f"almanac exited with {target.server.exit_code()} during the run"
        if target.server_pid is not None and not process_alive(target.server_pid):
            return f"server process {target.server_pid} is gone"
        return None

    client = await Client.connect(target.address, namespace=args.namespace)
    await worker.start()
    try:
        if args.warmup > 0:
            log(f"warm-up: {args.warmup} workflows (not measured)")
            warm, _ = await guarded(
                run_batch(client, task_queue, f"warm-{run_id}", args.warmup,
                          args.concurrency, args.result_timeout),
                health,
            )
            warm_failures = [o for o in warm if o.error]
            if warm_failures:
                raise RuntimeError(
                    f"{len(warm_failures)} warm-up workflows failed; first: "
                    f"{warm_failures[0].error}"
                )

        log(f"run: {args.n} workflows, concurrency {args.concurrency}")
        before = cpu_snapshot(target, worker)
        outcomes, wall_s = await guarded(
            run_batch(client, task_queue, f"run-{run_id}", args.n,
                      args.concurrency, args.result_timeout),
            health,
        )
        after = cpu_snapshot(target, worker)
    finally:
        await worker.stop()

    failures = [o for o in outcomes if o.error]
    latencies = sorted(o.latency_s for o in outcomes if not o.error)
    completed = len(latencies)
    cpu = {
        key: (after[key] - before[key]) if before[key] is not None else None
        for key in before
    }
    return {
        "store": target.store,
        "address": target.address,
        "worker": args.worker,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "workflows": args.n,
        "completed": completed,
        "failed": len(failures),
        "wall_s": wall_s,
        "workflows_per_s": completed / wall_s if wall_s > 0 else None,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "mean_ms": (sum(latencies) / completed * 1000) if completed else None,
        "max_ms": percentile_ms(latencies, 100),
        "server_cpu_s": cpu["server"],
        "server_cpu_s_per_1k": per_thousand(cpu["server"], args.n),
        "server_cores": cpu["server"] / wall_s if cpu["server"] is not None else None,
        "postgres_cpu_s_per_1k": per_thousand(cpu["postgres"], args.n),
        "worker_cpu_s_per_1k": per_thousand(cpu["worker"], args.n),
        "driver_cpu_s_per_1k": per_thousand(cpu["driver"], args.n),
        "clk_tck": CLK_TCK,
        "errors": [f"workflow {o.n}: {o.error}" for o in failures[:5]],
    }


# Output -------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def print_report(r: dict[str, Any]) -> None:
    driver_label = "driver+worker CPU" if r["worker"] == "inproc" else "driver CPU"
    rows = [
        ("store", f"{r['store']} ({r['address']})"),
        ("concurrency", f"{r['concurrency']} (warm-up of {r['warmup']} excluded)"),
        ("workflows", f"{r['workflows']} ({r['failed']} failed)"),
        ("wall", _fmt(r["wall_s"], " s")),
        ("throughput", _fmt(r["workflows_per_s"], " workflows/s", 1)),
        ("latency p50", _fmt(r["p50_ms"], " ms", 1)),
        ("latency p99", _fmt(r["p99_ms"], " ms", 1)),
        ("latency mean/max", f"{_fmt(r['mean_ms'], '', 1)} / {_fmt(r['max_ms'], ' ms', 1)}"),
        (
            "server CPU",
            f"{_fmt(r['server_cpu_s_per_1k'], ' s')} per 1,000 workflows "
            f"({_fmt(r['server_cores'])} cores busy)"
            if r["server_cpu_s"] is not None
            else "n/a (external server without --server-pid)",
        ),
    ]
    if r["postgres_cpu_s_per_1k"] is not None:
        rows.append(("postgres CPU", f"{_fmt(r['postgres_cpu_s_per_1k'], ' s')} per 1,000 workflows"))
    if r["worker"] == "process":
        rows.append(("worker CPU", f"{_fmt(r['worker_cpu_s_per_1k'], ' s')} per 1,000 workflows"))
    rows.append((driver_label, f"{_fmt(r['driver_cpu_s_per_1k'], ' s')} per 1,000 workflows"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for error in r["errors"]:
        print(f"error: {error}")


# Setup --------------------------------------------------------------------------------------


def wait_for_binary(timeout_s: float) -> None:
    """The binary may be mid-rebuild; give it a while to reappear."""
    binary = almanac_binary()
    deadline = time.monotonic() + timeout_s
    while not binary.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"almanac binary not found at {binary} (set ALMANAC_BIN)")
        log(f"waiting for {binary} to appear")
        time.sleep(5)


def start_server(server: AlmanacServer, binary_wait_s: float) -> None:
    for attempt in range(1, START_ATTEMPTS + 1):
        wait_for_binary(binary_wait_s)
        try:
            server.start()
            return
        except RuntimeError as err:
            if attempt == START_ATTEMPTS:
                raise
            log(f"daemon did not start (attempt {attempt}; binary being rebuilt?): "
                f"{str(err).splitlines()[0]}")
            server.stop()
            time.sleep(10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Drive many one-activity workflows through Almanac and report "
        "throughput, latency and server CPU.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", choices=("sqlite", "postgres"),
                       help="start a daemon on this store (default: sqlite)")
    where.add_argument("--address", help="host:port of an already running server")
    parser.add_argument("--server-pid", type=int,
                        help="with --address: the server's pid, to measure its CPU")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("-n", type=int, default=1000, help="measured workflows (default 1000)")
    parser.add_argument("-c", "--concurrency", type=int, default=50,
                        help="workflows in flight at most (default 50)")
    parser.add_argument("--warmup", type=int, default=50,
                        help="workflows run first and excluded from every figure (default 50)")
    parser.add_argument("--worker", choices=("process", "inproc"), default="process",
                        help="run the SDK worker in its own process (default) or in the "
                        "driver's event loop")
    parser.add_argument("--worker-slots", type=int, default=200,
                        help="max_concurrent_activities and max_concurrent_workflow_tasks "
                        "of the worker (default 200)")
    parser.add_argument("--result-timeout", type=float, default=120.0,
                        help="seconds one workflow may take before it counts as failed")
    parser.add_argument("--binary-wait", type=float, default=300.0,
                        help="seconds to wait for a missing almanac binary (default 300)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the daemon's work directory (database, log)")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON line instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("-n and -c must be positive, --warmup non-negative")
    if args.server_pid is not None and args.address is None:
        parser.error("--server-pid only goes with --address")
    if args.address is None and args.store is None:
        args.store = "sqlite"
    return args


def keep_stdout_for_report() -> None:
    """Points fd 1 at stderr, keeping the real stdout for the report only.

    The SDK's Rust core logs to fd 1 (in this process, and in the spawned worker, which
    inherits it); this keeps `--json` output to exactly one line.
    """
    sys.stdout.flush()
    report_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(report_fd, "w", buffering=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_stdout_for_report()
    cluster: PostgresCluster | None = None
    server: AlmanacServer | None = None
    work_dir: Path | None = None
    try:
        if args.address:
            target = Target(args.address, "external", args.server_pid, None, None)
        else:
            work_dir = Path(tempfile.mkdtemp(prefix="almanac-bench-"))
            try:
                if args.store == "postgres":
                    log("starting a private PostgreSQL cluster")
                    cluster = PostgresCluster()
                    cluster.start()
                server = AlmanacServer(args.store, work_dir, postgres=cluster)
                log(f"starting almanac on {args.store} ({server.binary})")
                start_server(server, args.binary_wait)
            except RuntimeError as err:
                log(f"setup failed: {err}")
                return 2
            target = Target(
                server.address,
                args.store,
                server._process.pid,  # the harness keeps its Popen private
                postmaster_pid(cluster) if cluster else None,
                server,
            )
        try:
            report = asyncio.run(benchmark(args, target))
        except Exception as err:  # noqa: BLE001 - reported, and the exit status says so
            log(f"benchmark failed: {type(err).__name__}: {err}")
            if server is not None:
                log(f"daemon log tail ({server.log_path}):\n{server.log_tail(40)}")
            return 1
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        if work_dir is not None:
            if args.keep:
                log(f"kept {work_dir}")
            else:
                shutil.rmtree(work_dir, ignore_errors=True)

    if args.json:
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}
        print(json.dumps(rounded, separators=(",", ":")))
    else:
        print_report(report)
    if report["failed"]:
        log(f"{report['failed']} of {report['workflows']} workflows failed or returned a "
            "wrong value")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
