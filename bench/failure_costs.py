#!/usr/bin/env python3
"""What one activity heartbeat and one activity retry cost the server.

Starts an Almanac daemon on SQLite and/or on a private PostgreSQL cluster (the integration
test harness), runs an in-process SDK worker against it, and measures two things:

Heartbeats. H workflows each run one activity that hands its task token to the driver and
completes asynchronously (so it stays open). The driver then calls the raw
RecordActivityTaskHeartbeat RPC N times in total, round-robin over the tokens, with C calls
in flight; the SDK's heartbeat throttling is bypassed. One heartbeat per token is sent first
and not measured (it inserts the heartbeat row; the measured ones overwrite it). Afterwards
the activities are completed by token and every workflow must return the expected value.

Retries. W workflows run one activity that fails R times and then succeeds (retry policy:
1 ms initial and maximum interval, coefficient 1), and W workflows of the same type whose
activity succeeds at once. The difference between the two batches, divided by W*R, is the
cost of one retry. --rounds repeats the pair and sums the deltas.

Every attempt and every workflow task arms a timeout timer that fires later, as a no-op,
and deletes its task row. That deferred work belongs to the batch that armed it, so after
each batch the driver waits --drain seconds (the longest timeout, 5 s, plus 1 s; the
worker's sticky schedule-to-start timeout is lowered to 5 s for this) before it
closes the batch's window; both batches wait equally long, so the idle CPU of the wait
cancels in the difference. "Before timers" is the server CPU up to the moment the batch's
workflows had all returned.

For every measured phase it records the daemon's CPU (utime+stime from /proc/<pid>/stat),
the wall time, and on PostgreSQL the PostgreSQL cluster's CPU, the deltas of
pg_stat_database for the daemon's database (commits, rows inserted/updated/deleted/fetched/
returned) and per-table deltas from pg_stat_user_tables. PostgreSQL publishes these
counters asynchronously: a backend flushes them at most once a second, and one that goes
idle right after a flush holds the rest back for 10 s (PGSTAT_IDLE_INTERVAL). So every
reading between phases first waits ~11 s and until the counters stop moving, which makes a
PostgreSQL run take a minute or two whatever the sizes. CPU is read right at the phase
boundaries, so these waits (unlike the drains) are not in the CPU figures. An idle window before the phases
measures what the daemon does on its own (CPU, commits per second); it is reported, not
subtracted. The database-wide counters also take in autovacuum/autoanalyze whenever it runs
(e.g. its pg_statistic rows); the per-table figures do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
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

from temporalio.api.common.v1 import Payload, Payloads  # noqa: E402
from temporalio.api.workflowservice.v1 import RecordActivityTaskHeartbeatRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

import failure_workflows as fw  # noqa: E402
from harness import AlmanacServer, PostgresCluster  # noqa: E402
from load import (  # noqa: E402
    CLK_TCK,
    guarded,
    keep_stdout_for_report,
    postmaster_pid,
    process_cpu_s,
    start_server,
    tree_cpu_s,
)

DB_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "tup_fetched",
    "tup_returned",
)
TABLE_COUNTERS = ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del", "seq_scan", "idx_scan",
                  "idx_tup_fetch")
# A backend publishes its counters at most once a second; one that goes idle less than a
# second after its last flush holds them back for PGSTAT_IDLE_INTERVAL (10 s) instead.
# pg_stat_force_next_flush() does not help: it flushes only the calling session's counters,
# not those of the daemon's connections.
STATS_QUIET_S = 11.0
STATS_SESSION_EXIT_S = 1.0  # a session that ends flushes at once
STATS_SETTLE_MAX_S = 10.0
PHASE_TIMEOUT_S = 300.0


# The name in log lines and temporary directories; a script that reuses this one's phases
# (bench/message_costs.py) sets its own.
LOG_NAME = "failure-costs"


def log(message: str) -> None:
    print(f"[{LOG_NAME}] {message}", file=sys.stderr, flush=True)


# PostgreSQL statistics ----------------------------------------------------------------------


class PgStats:
    """Reads the cumulative statistics of the daemon's database through psql."""

    def __init__(self, cluster: PostgresCluster, database: str) -> None:
        self.cluster = cluster
        self.database = database

    def _query(self, sql: str, database: str) -> list[list[str]]:
        cmd = [
            str(self.cluster.bin_dir / "psql"),
            "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--field-separator=|",
            "--host", self.cluster.host, "--port", str(self.cluster.port),
            "--username", PostgresCluster.SUPERUSER, "--dbname", database,
            "--set", "ON_ERROR_STOP=1", "--command", sql,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
        return [line.split("|") for line in result.stdout.splitlines() if line.strip()]

    def database_counters(self) -> dict[str, int]:
        """pg_stat_database for the daemon's database, read from the `postgres` database
        (so that the reading session's own commits and catalog reads are not counted)."""
        rows = self._query(
            f"SELECT {', '.join(DB_COUNTERS)} FROM pg_stat_database "
            f"WHERE datname = '{self.database}'",
            "postgres",
        )
        if len(rows) != 1:
            raise RuntimeError(f"no pg_stat_database row for {self.database}")
        return dict(zip(DB_COUNTERS, (int(v) for v in rows[0])))

    def table_counters(self) -> dict[str, dict[str, int]]:
        """pg_stat_user_tables of the daemon's database. This must connect to that database,
        which adds a commit and catalog reads to its pg_stat_database row: callers read the
        tables outside the window they read pg_stat_database over."""
        rows = self._query(
            "SELECT relname, "
            + ", ".join(f"coalesce({c}, 0)" for c in TABLE_COUNTERS)
            + " FROM pg_stat_user_tables",
            self.database,
        )
        return {r[0]: dict(zip(TABLE_COUNTERS, (int(v) for v in r[1:]))) for r in rows}

    async def settled_database_counters(self, quiet_s: float) -> dict[str, int]:
        """Waits `quiet_s`, then until two readings half a second apart agree (at most
        STATS_SETTLE_MAX_S more, in case the daemon keeps committing on its own)."""
        await asyncio.sleep(quiet_s)
        began = time.monotonic()
        previous = await asyncio.to_thread(self.database_counters)
        while time.monotonic() - began < STATS_SETTLE_MAX_S:
            await asyncio.sleep(0.5)
            current = await asyncio.to_thread(self.database_counters)
            if current == previous:
                return current
            previous = current
        return previous


# Measurement windows --------------------------------------------------------------------------


@dataclass
class PgSnapshot:
    """Settled PostgreSQL counters between two phases.

    `db_pre` is read before, `db_post` after the pg_stat_user_tables reading, whose own
    session (it must connect to the daemon's database) is counted in between. A window
    from snapshot A to snapshot B uses B.db_pre - A.db_post, which holds none of them."""

    db_pre: dict[str, int]
    tables: dict[str, dict[str, int]]
    db_post: dict[str, int]
    t_pre: float
    t_post: float


@dataclass
class CpuReading:
    server: float
    postgres: float | None
    t: float


@dataclass
class Window:
    """What one measured phase cost: CPU and wall between two CpuReadings, database work
    between two PgSnapshots."""

    ops: int
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_immediate_s: float = 0.0  # until the batch returned, before its timers fired
    postgres_cpu_s: float | None = None
    db: dict[str, int] | None = None
    tables: dict[str, dict[str, int]] | None = None

    def add(self, other: Window) -> None:
        self.ops += other.ops
        self.wall_s += other.wall_s
        self.server_cpu_s += other.server_cpu_s
        self.server_cpu_immediate_s += other.server_cpu_immediate_s
        if other.postgres_cpu_s is not None:
            self.postgres_cpu_s = (self.postgres_cpu_s or 0.0) + other.postgres_cpu_s
        if other.db is not None:
            self.db = {k: (self.db or {}).get(k, 0) + v for k, v in other.db.items()}
        if other.tables is not None:
            merged = dict(self.tables or {})
            for name, counters in other.tables.items():
                base = merged.get(name, {})
                merged[name] = {k: base.get(k, 0) + v for k, v in counters.items()}
            self.tables = merged


@dataclass
class Probe:
    server_pid: int
    postgres_pid: int | None
    pg: PgStats | None

    def cpu(self) -> CpuReading:
        return CpuReading(
            server=process_cpu_s(self.server_pid),
            postgres=tree_cpu_s(self.postgres_pid) if self.postgres_pid else None,
            t=time.perf_counter(),
        )

    async def snapshot(self) -> PgSnapshot | None:
        """Settled counters (None on SQLite). Takes STATS_QUIET_S and more: an idle backend
        that flushed less than a second ago holds its counters back for up to 10 s."""
        if self.pg is None:
            return None
        db_pre = await self.pg.settled_database_counters(STATS_QUIET_S)
        t_pre = time.perf_counter()
        tables = await asyncio.to_thread(self.pg.table_counters)
        # That session flushes its counters when it exits: a short wait is enough.
        db_post = await self.pg.settled_database_counters(STATS_SESSION_EXIT_S)
        return PgSnapshot(db_pre, tables, db_post, t_pre, time.perf_counter())

    @staticmethod
    def window(ops: int, cpu0: CpuReading, cpu1: CpuReading,
               pg0: PgSnapshot | None, pg1: PgSnapshot | None,
               done: CpuReading | None = None) -> Window:
        """`done`: the reading when the work returned, if `cpu1` was taken later (after the
        timers the work armed fired); wall time ends there."""
        done = done or cpu1
        w = Window(ops=ops, wall_s=done.t - cpu0.t, server_cpu_s=cpu1.server - cpu0.server,
                   server_cpu_immediate_s=done.server - cpu0.server)
        if cpu0.postgres is not None and cpu1.postgres is not None:
            w.postgres_cpu_s = cpu1.postgres - cpu0.postgres
        if pg0 is not None and pg1 is not None:
            w.db = {k: pg1.db_pre[k] - pg0.db_post[k] for k in DB_COUNTERS}
            w.tables = {}
            for name, after in pg1.tables.items():
                before = pg0.tables.get(name, {})
                delta = {k: after[k] - before.get(k, 0) for k in TABLE_COUNTERS}
                if any(delta.values()):
                    w.tables[name] = delta
        return w


def daemon_probe(server: AlmanacServer, cluster: PostgresCluster | None) -> Probe:
    """The probe of a daemon the harness started (and of its PostgreSQL cluster, if any)."""
    return Probe(
        server_pid=server._process.pid,  # the harness keeps its Popen private
        postgres_pid=postmaster_pid(cluster) if cluster else None,
        pg=PgStats(cluster, daemon_database(server)) if cluster is not None else None,
    )


def daemon_health(server: AlmanacServer) -> Callable[[], str | None]:
    def health() -> str | None:
        if not server.is_running():
            return f"almanac exited with {server.exit_code()} during the run"
        return None

    return health


def within(work: Awaitable[Any], health: Callable[[], str | None]) -> Any:
    """`work`, given up after PHASE_TIMEOUT_S or as soon as `health` reports a problem."""
    return guarded(asyncio.wait_for(work, PHASE_TIMEOUT_S), health)


async def measure_idle(
    probe: Probe, snap: PgSnapshot | None, seconds: float
) -> tuple[Window, float | None, PgSnapshot | None]:
    """An idle window of `seconds` (the worker polling, nothing to do) after `snap`: the
    window, how long the PostgreSQL counters' own window lasted, and the closing snapshot."""
    log(f"idle: {seconds:g} s with the worker polling and nothing to do")
    cpu0 = probe.cpu()
    await asyncio.sleep(seconds)
    cpu1 = probe.cpu()
    snap_next = await probe.snapshot()
    idle = Probe.window(0, cpu0, cpu1, snap, snap_next)
    idle_pg_s = (snap_next.t_pre - snap.t_post) if snap and snap_next else None
    return idle, idle_pg_s, snap_next


def idle_report(idle: Window, idle_pg_s: float | None) -> dict[str, Any]:
    return {
        "wall_s": idle.wall_s,
        "server_cpu_ms_per_s": idle.server_cpu_s * 1e3 / idle.wall_s,
        "postgres_cpu_ms_per_s": (idle.postgres_cpu_s * 1e3 / idle.wall_s
                                  if idle.postgres_cpu_s is not None else None),
        "pg_window_s": idle_pg_s,
        "xact_commit_per_s": (idle.db["xact_commit"] / idle_pg_s)
        if idle.db and idle_pg_s else None,
        "window": window_dict(idle),
    }


def per_op(total: Window, ops: int, minus: Window | None = None) -> dict[str, Any]:
    """Costs per operation: `total` (less `minus`, scaled to the same number of workflows)
    divided by `ops`."""

    def diff(a: float | None, b: float | None) -> float | None:
        if a is None:
            return None
        return a - (b or 0.0)

    m = minus
    out: dict[str, Any] = {
        "server_cpu_us": diff(total.server_cpu_s, m.server_cpu_s if m else None) * 1e6 / ops,
        "server_cpu_immediate_us": diff(
            total.server_cpu_immediate_s, m.server_cpu_immediate_s if m else None) * 1e6 / ops,
        "postgres_cpu_us": (
            None if total.postgres_cpu_s is None
            else diff(total.postgres_cpu_s, m.postgres_cpu_s if m else None) * 1e6 / ops
        ),
    }
    if total.db is not None:
        for k in DB_COUNTERS:
            out[k] = (total.db[k] - (m.db[k] if m and m.db else 0)) / ops
    if total.tables is not None:
        tables: dict[str, dict[str, float]] = {}
        names = set(total.tables) | set(m.tables if m and m.tables else {})
        for name in sorted(names):
            a = total.tables.get(name, {})
            b = (m.tables or {}).get(name, {}) if m else {}
            row = {k: (a.get(k, 0) - b.get(k, 0)) / ops for k in TABLE_COUNTERS}
            if any(abs(v) >= 0.005 for v in row.values()):
                tables[name] = row
        out["tables"] = tables
    return out


def window_dict(w: Window) -> dict[str, Any]:
    return {
        "ops": w.ops,
        "wall_s": w.wall_s,
        "server_cpu_s": w.server_cpu_s,
        "server_cpu_immediate_s": w.server_cpu_immediate_s,
        "postgres_cpu_s": w.postgres_cpu_s,
        "db": w.db,
        "tables": w.tables,
    }


# The phases -------------------------------------------------------------------------------


async def run_flaky_batch(
    client: Client, task_queue: str, prefix: str, count: int, failures: int
) -> None:
    """Starts `count` FlakyActivityWorkflows at once and checks that each succeeded on
    attempt failures+1."""

    async def one(i: int) -> None:
        handle = await client.start_workflow(
            fw.FlakyActivityWorkflow.run, failures, id=f"{prefix}-{i}", task_queue=task_queue,
            task_timeout=fw.WORKFLOW_TASK_TIMEOUT,
        )
        attempt = await handle.result()
        if attempt != failures + 1:
            raise RuntimeError(f"{prefix}-{i}: succeeded on attempt {attempt}, "
                               f"expected {failures + 1}")

    await asyncio.gather(*(one(i) for i in range(count)))


@dataclass
class HeldActivities:
    """The open activities the heartbeats go to, and their workflows."""

    tokens: list[bytes]
    handles: list[Any]


async def open_held_activities(
    client: Client, task_queue: str, prefix: str, count: int, health: Any
) -> HeldActivities:
    ids = [f"{prefix}-{i}" for i in range(count)]
    handles = [
        await client.start_workflow(fw.HeldActivityWorkflow.run, id=wid, task_queue=task_queue,
                                    task_timeout=fw.WORKFLOW_TASK_TIMEOUT)
        for wid in ids
    ]

    async def tokens_ready() -> None:
        while not all(wid in fw.HELD_TOKENS for wid in ids):
            await asyncio.sleep(0.05)

    await guarded(asyncio.wait_for(tokens_ready(), 60), health)
    return HeldActivities([fw.HELD_TOKENS.pop(wid) for wid in ids], handles)


async def in_flight(count: int, concurrency: int, one: Callable[[int], Awaitable[Any]],
                    what: str) -> None:
    """Awaits one(0) ... one(count - 1), `concurrency` at a time; raises once all are done
    if any raised (`what` names them in the message)."""
    errors: list[str] = []

    async def slot(indices: Any) -> None:
        for i in indices:
            try:
                await one(i)
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors.append(f"{what} #{i}: {type(err).__name__}: {err}")

    shared = iter(range(count))  # one iterator: each slot takes the next index
    await asyncio.gather(*(slot(shared) for _ in range(min(concurrency, count))))
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} {what} failed; first: {errors[0]}")


async def send_heartbeats(
    client: Client, namespace: str, tokens: list[bytes], count: int, concurrency: int
) -> None:
    """`count` RecordActivityTaskHeartbeat calls, round-robin over `tokens`, `concurrency`
    in flight; raises if any failed or asked for cancellation."""

    async def heartbeat(i: int) -> None:
        details = Payloads(payloads=[Payload(
            metadata={"encoding": b"json/plain"}, data=f'{{"progress":{i}}}'.encode()
        )])
        resp = await client.workflow_service.record_activity_task_heartbeat(
            RecordActivityTaskHeartbeatRequest(
                namespace=namespace,
                task_token=tokens[i % len(tokens)],
                details=details,
                identity="failure-costs",
            )
        )
        if resp.cancel_requested:
            raise RuntimeError("cancel_requested")

    await in_flight(count, concurrency, heartbeat, "heartbeats")


async def close_held_activities(client: Client, held: HeldActivities, health: Any) -> None:
    """Completes the activities by token; every workflow must then return their result."""
    for token in held.tokens:
        await client.get_async_activity_handle(task_token=token).complete("held-done")
    results = await guarded(
        asyncio.wait_for(asyncio.gather(*(h.result() for h in held.handles)), 120), health
    )
    wrong = [r for r in results if r != "held-done"]
    if wrong:
        raise RuntimeError(f"{len(wrong)} held workflows returned something else: {wrong[0]!r}")


def bench_worker(client: Client, task_queue: str, workflows: list[type],
                 activities: list[Callable[..., Any]] | None = None) -> Worker:
    """The in-process SDK worker: slots enough never to be the limit, and the short sticky
    schedule-to-start timeout that --drain waits for."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities or [],
        max_concurrent_activities=200,
        max_concurrent_workflow_tasks=200,
        sticky_queue_schedule_to_start_timeout=fw.STICKY_TIMEOUT,
    )


async def drain(seconds: float, what: str) -> None:
    """Lets the timers armed by `what` (workflow task and activity timeouts) fire."""
    log(f"waiting {seconds:g} s for the timers of {what} to fire")
    await asyncio.sleep(seconds)


async def measure_store(
    args: argparse.Namespace, store: str, server: AlmanacServer, cluster: PostgresCluster | None,
) -> dict[str, Any]:
    probe = daemon_probe(server, cluster)
    health = daemon_health(server)

    def timed(work: Any) -> Any:
        return within(work, health)

    run_id = uuid.uuid4().hex[:10]
    task_queue = f"failure-costs-{run_id}"
    client = await Client.connect(server.address, namespace=args.namespace)
    worker = bench_worker(client, task_queue,
                          workflows=[fw.HeldActivityWorkflow, fw.FlakyActivityWorkflow],
                          activities=[fw.hold_activity, fw.flaky_activity])
    async with worker:
        # Unmeasured set-up: a few workflows with retries, then the held activities, each
        # heartbeated once (the first heartbeat inserts the row the later ones overwrite).
        log(f"warm-up: {args.warmup} workflows with 2 retries each; opening "
            f"{args.hb_workflows} held activities (not measured)")
        await timed(run_flaky_batch(client, task_queue, f"warm-{run_id}", args.warmup, 2))
        held = await open_held_activities(
            client, task_queue, f"hb-{run_id}", args.hb_workflows, health)
        await timed(send_heartbeats(client, args.namespace, held.tokens, len(held.tokens),
                                    args.hb_concurrency))
        await drain(args.drain, "set-up")
        if probe.pg is not None:
            log("waiting for PostgreSQL's statistics to settle before each reading "
                f"(~{STATS_QUIET_S:g} s each)")
        snap = await probe.snapshot()
        idle, idle_pg_s, snap = await measure_idle(probe, snap, args.idle)

        log(f"heartbeats: {args.heartbeats} over {len(held.tokens)} open activities, "
            f"{args.hb_concurrency} in flight")
        cpu0 = probe.cpu()
        await timed(send_heartbeats(client, args.namespace, held.tokens, args.heartbeats,
                                    args.hb_concurrency))
        cpu1 = probe.cpu()
        snap_next = await probe.snapshot()
        heartbeats = Probe.window(args.heartbeats, cpu0, cpu1, snap, snap_next)

        await close_held_activities(client, held, health)
        await drain(args.drain, "closing the held activities")
        snap = await probe.snapshot()

        baseline, retried = Window(ops=0), Window(ops=0)
        for rnd in range(args.rounds):
            for failures, total, name in ((0, baseline, "base"),
                                          (args.failures, retried, "retry")):
                log(f"retries, round {rnd + 1}/{args.rounds}: {args.workflows} workflows "
                    f"whose activity fails {failures} times")
                cpu0 = probe.cpu()
                await timed(run_flaky_batch(client, task_queue, f"{name}-{run_id}-{rnd}",
                                            args.workflows, failures))
                done = probe.cpu()
                await drain(args.drain, "the batch")
                cpu1 = probe.cpu()
                snap_next = await probe.snapshot()
                total.add(Probe.window(args.workflows, cpu0, cpu1, snap, snap_next, done))
                snap = snap_next

    retries = args.workflows * args.rounds * args.failures
    return {
        "store": store,
        "clk_tck": CLK_TCK,
        "params": {
            "heartbeats": args.heartbeats, "hb_workflows": args.hb_workflows,
            "hb_concurrency": args.hb_concurrency, "workflows": args.workflows,
            "failures": args.failures, "rounds": args.rounds, "idle_s": args.idle,
            "drain_s": args.drain,
        },
        "idle": idle_report(idle, idle_pg_s),
        "heartbeat": {
            "count": args.heartbeats,
            "wall_s": heartbeats.wall_s,
            "per_s": args.heartbeats / heartbeats.wall_s,
            "per_op": per_op(heartbeats, args.heartbeats),
            "window": window_dict(heartbeats),
        },
        "retry": {
            "retries": retries,
            "baseline_wall_s": baseline.wall_s,
            "retry_wall_s": retried.wall_s,
            "per_op": per_op(retried, retries, minus=baseline),
            "per_workflow_without_retry": per_op(baseline, baseline.ops),
            "baseline": window_dict(baseline),
            "retried": window_dict(retried),
        },
    }


def daemon_database(server: AlmanacServer) -> str:
    """The database the harness created for the daemon, from the config it wrote."""
    assert server._config_path is not None
    for line in server._config_path.read_text().splitlines():
        key, _, value = line.strip().partition(":")
        if key == "database":
            return value.strip()
    raise RuntimeError(f"no database in {server._config_path}")


Measure = Callable[
    [argparse.Namespace, str, AlmanacServer, PostgresCluster | None], Awaitable[dict[str, Any]]
]


def run_store(args: argparse.Namespace, store: str,
              measure: Measure | None = None) -> dict[str, Any]:
    """Starts a daemon on `store` (and PostgreSQL for it), runs `measure` (default: this
    script's) against it, and tears both down; `args.binary_wait` and `args.keep` apply."""
    measure = measure or measure_store
    cluster: PostgresCluster | None = None
    server: AlmanacServer | None = None
    work_dir = Path(tempfile.mkdtemp(prefix=f"almanac-{LOG_NAME}-"))
    try:
        if store == "postgres":
            log("starting a private PostgreSQL cluster")
            cluster = PostgresCluster()
            cluster.start()
        server = AlmanacServer(store, work_dir, postgres=cluster)
        log(f"starting almanac on {store} ({server.binary})")
        start_server(server, args.binary_wait)
        try:
            return asyncio.run(measure(args, store, server, cluster))
        except BaseException:
            log(f"daemon log tail ({server.log_path}):\n{server.log_tail(30)}")
            raise
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        if args.keep:
            log(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


# Output -----------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_report(r: dict[str, Any]) -> None:
    p = r["params"]
    hb, rt = r["heartbeat"], r["retry"]
    print(f"== {r['store']} ==")
    print(f"heartbeats: {p['heartbeats']} over {p['hb_workflows']} open activities, "
          f"{p['hb_concurrency']} in flight: {hb['wall_s']:.2f} s wall, "
          f"{hb['per_s']:.0f}/s")
    print(f"retries: {p['rounds']} x ({p['workflows']} workflows x {p['failures']} failures"
          f" vs {p['workflows']} without): {rt['retry_wall_s']:.2f} s vs "
          f"{rt['baseline_wall_s']:.2f} s wall")
    print_idle(r["idle"], p["idle_s"])
    print_cost_table([("per heartbeat", hb["per_op"]), ("per retry", rt["per_op"]),
                      ("per workflow, no retry", rt["per_workflow_without_retry"])])
    print()


def print_idle(idle: dict[str, Any], seconds: float) -> None:
    print(f"idle ({seconds:g} s): server {idle['server_cpu_ms_per_s']:.1f} ms CPU/s"
          + (f", {idle['xact_commit_per_s']:.2f} commits/s over {idle['pg_window_s']:.0f} s"
             if idle["xact_commit_per_s"] is not None else ""))


def print_cost_table(cols: list[tuple[str, dict[str, Any]]],
                     extra_rows: tuple[tuple[str, str, int], ...] = ()) -> None:
    """One column per operation (its `per_op` figures), then each one's per-table deltas.
    `extra_rows` (label, key, digits) come after the CPU rows."""
    rows = [("server CPU (us)", "server_cpu_us", 0),
            ("  of which before timers", "server_cpu_immediate_us", 0),
            ("postgres CPU (us)", "postgres_cpu_us", 0)]
    rows += list(extra_rows)
    if any("xact_commit" in c for _, c in cols):
        rows += [
            ("commits", "xact_commit", 2), ("rollbacks", "xact_rollback", 2),
            ("rows inserted", "tup_inserted", 2), ("rows updated", "tup_updated", 2),
            ("rows deleted", "tup_deleted", 2), ("rows fetched", "tup_fetched", 1),
            ("rows returned", "tup_returned", 1),
        ]
    else:
        rows = [row for row in rows if row[1] != "postgres_cpu_us"]
    width = max(len(label) for label, _, _ in rows)
    colw = max(len(name) for name, _ in cols) + 2
    print(" " * width + "".join(f"{name:>{colw}}" for name, _ in cols))
    for label, key, digits in rows:
        print(f"{label:<{width}}" + "".join(f"{_f(c.get(key), digits):>{colw}}" for _, c in cols))
    for name, c in cols:
        tables = c.get("tables")
        if not tables:
            continue
        print(f"tables, {name} (ins/upd[hot]/del, idx scans (rows they fetched), seq scans):")
        for table, t in tables.items():
            print(f"  {table:<28} {t['n_tup_ins']:6.2f} / {t['n_tup_upd']:5.2f}"
                  f"[{t['n_tup_hot_upd']:5.2f}] / {t['n_tup_del']:5.2f},"
                  f" {t['idx_scan']:6.2f} ({t.get('idx_tup_fetch', 0):6.1f}),"
                  f" {t['seq_scan']:5.2f}")


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def add_common_args(parser: argparse.ArgumentParser, default_drain: float,
                    drain_help: str) -> None:
    """The options run_stores, measure_idle and drain take, shared with message_costs.py."""
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--idle", type=float, default=3.0,
                        help="seconds of the idle measurement (default 3)")
    parser.add_argument("--drain", type=float, default=default_drain,
                        help=f"{drain_help} (default {default_drain:g}: the longest timeout "
                        "plus 1 s)")
    parser.add_argument("--binary-wait", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the daemon's work directory")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per store instead of a table")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_drain = max(fw.WORKFLOW_TASK_TIMEOUT, fw.FLAKY_TIMEOUT,
                        fw.STICKY_TIMEOUT).total_seconds() + 1
    parser = argparse.ArgumentParser(
        description="Measure the server cost of one activity heartbeat and one activity "
        "retry on SQLite and PostgreSQL.")
    add_common_args(parser, default_drain, "seconds waited after each batch of workflows, "
                    "inside its window, for the timeouts it armed to fire")
    parser.add_argument("--heartbeats", type=int, default=2000,
                        help="measured heartbeat RPCs in total (default 2000)")
    parser.add_argument("--hb-workflows", type=int, default=20,
                        help="open activities the heartbeats are spread over (default 20)")
    parser.add_argument("--hb-concurrency", type=int, default=10,
                        help="heartbeat RPCs in flight (default 10)")
    parser.add_argument("-w", "--workflows", type=int, default=50,
                        help="workflows per batch in the retry measurement (default 50)")
    parser.add_argument("-r", "--failures", type=int, default=10,
                        help="failed attempts per activity before it succeeds (default 10)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="baseline+retry batch pairs, summed (default 1)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="unmeasured workflows (2 failures each) run first (default 20)")
    args = parser.parse_args(argv)
    if min(args.heartbeats, args.hb_workflows, args.hb_concurrency, args.workflows,
           args.failures, args.rounds) < 1 or args.warmup < 0 or args.idle <= 0:
        parser.error("sizes must be positive")
    return args


def run_stores(args: argparse.Namespace, measure: Measure | None = None,
               report: Callable[[dict[str, Any]], None] | None = None) -> int:
    """run_store for each store of `args.store` (both: PostgreSQL first); prints each
    result (one JSON line with --json, else `report`). Returns the exit status: 1 if any
    store failed."""
    report = report or print_report
    stores = ("postgres", "sqlite") if args.store == "both" else (args.store,)
    status = 0
    for store in stores:
        try:
            result = run_store(args, store, measure)
        except Exception as err:  # noqa: BLE001 - reported, and the exit status says so
            log(f"{store}: failed: {type(err).__name__}: {err}")
            status = 1
            continue
        if args.json:
            print(json.dumps(rounded(result), separators=(",", ":")))
        else:
            report(result)
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_stdout_for_report()
    return run_stores(args)


if __name__ == "__main__":
    sys.exit(main())
