#!/usr/bin/env python3
"""List and count latency over a large visibility store (ListWorkflowExecutions and
CountWorkflowExecutions with Temporal's query language), on SQLite and PostgreSQL.

Per store (--store sqlite|postgres|both):

1. Starts the real daemon once on a fresh store (the integration harness: start-dev on a
   SQLite file, or schema setup + server against a private PostgreSQL cluster), so that the
   schema is migrated and the namespace exists; registers two custom search attributes on
   the namespace through OperatorService.AddSearchAttributes (CustomKeyword: Keyword,
   CustomInt: Int); reads the namespace id with DescribeNamespace; stops the daemon.
2. Bulk-loads --rows runs (default 1,000,000) directly into `visibility`, with the index
   rows of their custom attributes in `visibility_search_attributes` (under the registered
   names) and the attributes' payload bytes in `visibility.search_attributes`, in one
   transaction (SQLite: executemany through the sqlite3 module; PostgreSQL: COPY through
   psql). The tables' secondary indexes (and PostgreSQL's primary key) are dropped first and
   recreated after from their own definitions, read back from sqlite_master / pg_indexes,
   so they are whatever the migration made. Then ANALYZE (PostgreSQL: VACUUM (ANALYZE), the
   state autovacuum leaves a table in, and a CHECKPOINT; SQLite: a WAL checkpoint);
   --no-analyze skips it, which is how the daemon leaves a SQLite store (it never runs
   ANALYZE).
   The mix (fixed by --seed): 10 workflow types T0..T9 with skewed shares (T0 25%, T3
   10%), 20 task queues q0..q19, statuses 2% Running and otherwise closed (85% Completed,
   5% Failed, 2% each Canceled, Terminated, ContinuedAsNew, TimedOut), start times spread
   evenly over the 30 days up to now (rows inserted in start order, as a live store fills),
   run lengths from seconds to days; workflow ids wf-<i> (one run each), random UUID run
   ids; CustomKeyword k0..k19 on 40% of runs, CustomInt 0..99 on 30%.
3. Starts the daemon again on that database and times real gRPC calls through the Python
   SDK's raw service client (client.workflow_service.list_workflow_executions /
   count_workflow_executions), one at a time, each figure after one unmeasured call:
   for each of ten filters, its count, its first page (--page-size, 100) and page
   --deep-page (10), reached once by following next_page_token and then repeated with the
   same token; then the count GROUP BY ExecutionStatus. A figure is --repeat calls (20),
   fewer (at least 3) when that would take more than --budget seconds. A call that takes
   longer than --call-timeout is recorded as timed out, and the daemon is restarted so that
   the statement it left running disturbs nothing else.
   Every answer is checked: counts against what the loader wrote, pages for their size,
   their order (open runs first, then close time and start time descending, run id
   ascending) across the walk, and every run against its filter.
4. For every figure whose median exceeds --slow-ms (100; --plans: every figure), the SQL the
   store runs for it (rebuilt here in the shapes of sql_visibility.cc and
   visibility_query.cc) with its plan: SQLite's EXPLAIN QUERY PLAN and the statement's time
   through Python's sqlite3 (the same library) on the same file; PostgreSQL's EXPLAIN
   (ANALYZE, BUFFERS) with the parameters as literals (the daemon's unnamed statements are
   planned with their values too).

Latency is client-observed (perf_counter around the awaited call): the RPC, the daemon's
compile and query, and the SDK's decoding of the page. Run it alone on the machine
(`flock /tmp/almanac-build.lock ...` on the shared 2-core VM). At 1,000,000 rows a store
takes about 2-5 minutes, about one of them the load. --json prints one JSON line per store.
docs/performance.md has the figures and what they mean.

    build/venv/bin/python bench/visibility_list.py --store both
    build/venv/bin/python bench/visibility_list.py --store sqlite --rows 100000 --plans
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from temporalio.api.common.v1 import Payload, SearchAttributes  # noqa: E402
from temporalio.api.enums.v1 import IndexedValueType, WorkflowExecutionStatus  # noqa: E402
from temporalio.api.operatorservice.v1 import (  # noqa: E402
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import (  # noqa: E402
    CountWorkflowExecutionsRequest,
    DescribeNamespaceRequest,
    ListWorkflowExecutionsRequest,
)
from temporalio.client import Client  # noqa: E402
from temporalio.service import RPCError, RPCStatusCode  # noqa: E402

from harness import AlmanacServer, PostgresCluster  # noqa: E402
from load import keep_stdout_for_report, percentile_ms, start_server  # noqa: E402

INT64_MAX = 9223372036854775807
DAY_US = 86_400 * 1_000_000
SPAN_DAYS = 30

KEYWORD_ATTR = "CustomKeyword"
INT_ATTR = "CustomInt"
ATTRIBUTES = {
    KEYWORD_ATTR: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    INT_ATTR: IndexedValueType.INDEXED_VALUE_TYPE_INT,
}

TYPES = [f"T{i}" for i in range(10)]
TYPE_SHARES = [25, 18, 13, 10, 8, 7, 6, 5, 4, 4]
QUEUES = [f"q{i}" for i in range(20)]
S = WorkflowExecutionStatus
STATUS_SHARES = [
    (S.WORKFLOW_EXECUTION_STATUS_RUNNING, 2),
    (S.WORKFLOW_EXECUTION_STATUS_COMPLETED, 85),
    (S.WORKFLOW_EXECUTION_STATUS_FAILED, 5),
    (S.WORKFLOW_EXECUTION_STATUS_CANCELED, 2),
    (S.WORKFLOW_EXECUTION_STATUS_TERMINATED, 2),
    (S.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, 2),
    (S.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, 2),
]
RUNNING = int(S.WORKFLOW_EXECUTION_STATUS_RUNNING)
COMPLETED = int(S.WORKFLOW_EXECUTION_STATUS_COMPLETED)
KEYWORD_SHARE, KEYWORDS = 0.40, [f"k{i}" for i in range(20)]
INT_SHARE, INT_RANGE = 0.30, 100
ID_PREFIX = "wf-12345"

COLUMNS = (
    "namespace_id", "run_id", "workflow_id", "workflow_type", "task_queue", "status",
    "start_time", "execution_time", "close_time", "history_length", "execution_duration",
    "state_transition_count", "history_size_bytes", "parent_workflow_id", "parent_run_id",
    "root_workflow_id", "root_run_id", "memo", "search_attributes",
)
SA_COLUMNS = ("namespace_id", "run_id", "name", "int_value", "double_value", "text_value")

# The SQL the store runs (src/persistence/sql/sql_visibility.cc), for the plans.
LIST_COLUMNS = (
    "workflow_id, run_id, workflow_type, task_queue, status, start_time, execution_time, "
    "close_time, history_length, execution_duration, state_transition_count, "
    "history_size_bytes, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id, "
    "memo, search_attributes")
ORDER_KEY = "COALESCE(close_time, 9223372036854775807)"
ORDER_BY = f"{ORDER_KEY} DESC, start_time DESC, run_id"
SIDE_EXISTS = (
    "EXISTS (SELECT 1 FROM visibility_search_attributes sa WHERE sa.namespace_id = "
    "visibility.namespace_id AND sa.run_id = visibility.run_id AND sa.name = ${n} AND {cond})")

LOG_NAME = "visibility-list"


def log(message: str) -> None:
    print(f"[{LOG_NAME}] {message}", file=sys.stderr, flush=True)


# The data -----------------------------------------------------------------------------------


@dataclass
class Loaded:
    """What the loader wrote, to check answers against."""

    rows: int = 0
    side_rows: int = 0
    newest_start_us: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    queue7_completed: int = 0
    keyword5: int = 0
    keyword5_completed: int = 0
    int_over_90: int = 0
    starts: list[int] = field(default_factory=list)  # ascending
    generate_s: float = 0.0  # of the load's wall time, generating rows in Python

    def started_after(self, micros: int) -> int:
        return len(self.starts) - bisect.bisect_right(self.starts, micros)


def _payload(value: str | int, type_name: str) -> Payload:
    data = json.dumps(value).encode()
    return Payload(metadata={"encoding": b"json/plain", "type": type_name.encode()}, data=data)


class Generator:
    """The runs, in start order, reproducible from the seed; tallies into `loaded`."""

    def __init__(self, rows: int, namespace_id: str, seed: int, end_us: int) -> None:
        self.rows = rows
        self.ns = namespace_id
        self.rng = random.Random(seed)
        self.end_us = end_us
        self.span_us = SPAN_DAYS * DAY_US
        self.loaded = Loaded()
        self.side: list[tuple[Any, ...]] = []
        self._blobs: dict[tuple[int, int], bytes] = {}
        self._type_cum = self._cumulative(TYPE_SHARES)
        self._status_cum = self._cumulative([w for _, w in STATUS_SHARES])

    @staticmethod
    def _cumulative(weights: list[int]) -> list[float]:
        total, acc, out = sum(weights), 0, []
        for w in weights:
            acc += w
            out.append(acc / total)
        return out

    def _attributes_blob(self, keyword: int, number: int) -> bytes:
        """The SearchAttributes message as the daemon stores it (-1: not set)."""
        key = (keyword, number)
        blob = self._blobs.get(key)
        if blob is None:
            fields = {}
            if keyword >= 0:
                fields[KEYWORD_ATTR] = _payload(KEYWORDS[keyword], "Keyword")
            if number >= 0:
                fields[INT_ATTR] = _payload(number, "Int")
            blob = SearchAttributes(indexed_fields=fields).SerializeToString()
            self._blobs[key] = blob
        return blob

    def _duration_us(self) -> int:
        r, u = self.rng.random(), self.rng.random()
        if r < 0.60:
            seconds = 0.2 + u * 30  # seconds
        elif r < 0.90:
            seconds = 30 * (120 ** u)  # 30 s to 1 h
        elif r < 0.99:
            seconds = 3600 * (24 ** u)  # 1 h to 1 day
        else:
            seconds = 86_400 * (7 ** u)  # 1 to 7 days
        return int(seconds * 1_000_000)

    def runs(self) -> Iterator[tuple[Any, ...]]:
        rng, loaded = self.rng, self.loaded
        began = time.perf_counter()
        first_us = self.end_us - self.span_us
        step = self.span_us / self.rows
        for i in range(self.rows):
            run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            wid = f"wf-{i}"
            wtype = TYPES[bisect.bisect_left(self._type_cum, rng.random())]
            queue = QUEUES[rng.randrange(len(QUEUES))]
            status = int(STATUS_SHARES[bisect.bisect_left(self._status_cum, rng.random())][0])
            start = first_us + int((i + rng.random()) * step)
            if status == RUNNING:
                close = history_length = duration = transitions = size = None
            else:
                close = start + self._duration_us()
                if close >= self.end_us:
                    close = self.end_us - rng.randrange(1, 1_000_000)
                    close = max(close, start)
                history_length = rng.randint(5, 200)
                duration = (close - start) * 1000
                transitions = history_length // 2 + 1
                size = history_length * 310
            keyword = rng.randrange(len(KEYWORDS)) if rng.random() < KEYWORD_SHARE else -1
            number = rng.randrange(INT_RANGE) if rng.random() < INT_SHARE else -1
            blob = None
            if keyword >= 0 or number >= 0:
                blob = self._attributes_blob(keyword, number)
            if keyword >= 0:
                self.side.append((self.ns, run_id, KEYWORD_ATTR, None, None, KEYWORDS[keyword]))
            if number >= 0:
                self.side.append((self.ns, run_id, INT_ATTR, number, None, None))

            loaded.rows += 1
            loaded.by_status[status] = loaded.by_status.get(status, 0) + 1
            loaded.by_type[wtype] = loaded.by_type.get(wtype, 0) + 1
            loaded.queue7_completed += queue == "q7" and status == COMPLETED
            loaded.keyword5 += keyword == 5
            loaded.keyword5_completed += keyword == 5 and status == COMPLETED
            loaded.int_over_90 += number > 90
            loaded.starts.append(start)
            loaded.newest_start_us = max(loaded.newest_start_us, start)
            yield (self.ns, run_id, wid, wtype, queue, status, start, start, close,
                   history_length, duration, transitions, size, None, None, wid, run_id, None,
                   blob)
        loaded.side_rows = len(self.side)
        loaded.generate_s += time.perf_counter() - began


# Loading ------------------------------------------------------------------------------------


def sqlite_load(db_path: Path, gen: Generator, analyze: bool) -> dict[str, float]:
    """Bulk-loads into the daemon's SQLite file (the daemon stopped). Returns phase times."""
    phases: dict[str, float] = {}
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        have = {r[1] for r in con.execute("PRAGMA table_info(visibility)")}
        missing = set(COLUMNS) - have
        if missing:
            raise RuntimeError(f"visibility lacks columns {sorted(missing)}: another schema?")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1048576")  # 1 GiB, for the load only
        con.execute("PRAGMA temp_store=MEMORY")
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('visibility', 'visibility_search_attributes') ORDER BY name"
        ).fetchall()
        t0 = time.perf_counter()
        con.execute("BEGIN")
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        con.executemany(
            f"INSERT INTO visibility ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})", gen.runs())
        con.executemany(
            f"INSERT INTO visibility_search_attributes ({', '.join(SA_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(SA_COLUMNS))})", gen.side)
        t1 = time.perf_counter()
        for _, sql in indexes:
            con.execute(sql)
        con.execute("COMMIT")
        t2 = time.perf_counter()
        phases["insert_s"] = t1 - t0
        phases["index_s"] = t2 - t1
        if analyze:
            con.execute("ANALYZE")
        t3 = time.perf_counter()
        phases["analyze_s"] = t3 - t2
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        phases["checkpoint_s"] = time.perf_counter() - t3
    finally:
        con.close()
    return phases


def psql_command(cluster: PostgresCluster, database: str, *args: str) -> list[str]:
    return [str(cluster.bin_dir / "psql"), "--no-psqlrc", "--quiet", "--host", cluster.host,
            "--port", str(cluster.port), "--username", PostgresCluster.SUPERUSER,
            "--dbname", database, "--set", "ON_ERROR_STOP=1", *args]


def psql_query(cluster: PostgresCluster, database: str, sql: str) -> str:
    """Runs one statement as the superuser; its output, unaligned, tuples only."""
    result = subprocess.run(psql_command(cluster, database, "-At", "-c", sql),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"psql: {sql[:200]}\n{result.stderr}")
    return result.stdout


def _copy_field(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bytes):
        return "\\\\x" + v.hex()
    return str(v)  # ids, names and numbers: no tab, newline or backslash in them


def postgres_load(cluster: PostgresCluster, database: str, gen: Generator,
                  log_path: Path, analyze: bool) -> dict[str, float]:
    """Bulk-loads with COPY through psql, in one transaction (the daemon stopped)."""
    have = set(psql_query(cluster, database,
                          "SELECT column_name FROM information_schema.columns "
                          "WHERE table_name = 'visibility'").split())
    missing = set(COLUMNS) - have
    if missing:
        raise RuntimeError(f"visibility lacks columns {sorted(missing)}: another schema?")
    index_rows = psql_query(
        cluster, database,
        "SELECT indexname || chr(9) || indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename IN ('visibility', 'visibility_search_attributes') AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint) ORDER BY indexname").splitlines()
    indexes = [line.split("\t", 1) for line in index_rows if line]
    primary = psql_query(
        cluster, database,
        "SELECT conname || chr(9) || pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'visibility'::regclass AND contype = 'p'").strip().split("\t", 1)

    t0 = time.perf_counter()
    with log_path.open("ab") as out:
        proc = subprocess.Popen(psql_command(cluster, database), stdin=subprocess.PIPE,
                                stdout=out, stderr=out)
        assert proc.stdin is not None

        def send(text: str) -> None:
            proc.stdin.write(text.encode())

        try:
            send("BEGIN;\nSET LOCAL maintenance_work_mem = '512MB';\n")
            for name, _ in indexes:
                send(f'DROP INDEX "{name}";\n')
            send(f'ALTER TABLE visibility DROP CONSTRAINT "{primary[0]}";\n')
            send(f"COPY visibility ({', '.join(COLUMNS)}) FROM STDIN;\n")
            chunk: list[str] = []
            for row in gen.runs():
                chunk.append("\t".join(map(_copy_field, row)))
                if len(chunk) == 10_000:
                    send("\n".join(chunk) + "\n")
                    chunk = []
            send("".join(line + "\n" for line in chunk) + "\\.\n")
            send(f"COPY visibility_search_attributes ({', '.join(SA_COLUMNS)}) FROM STDIN;\n")
            for start in range(0, len(gen.side), 10_000):
                send("".join("\t".join(map(_copy_field, r)) + "\n"
                             for r in gen.side[start:start + 10_000]))
            send("\\.\n")
            send("SELECT 'copied', extract(epoch FROM clock_timestamp());\n")
            send(f'ALTER TABLE visibility ADD CONSTRAINT "{primary[0]}" {primary[1]};\n')
            for _, definition in indexes:
                send(definition + ";\n")
            send("COMMIT;\n")
            send("SELECT 'indexed', extract(epoch FROM clock_timestamp());\n")
            if analyze:
                send("VACUUM (ANALYZE) visibility;\n"
                     "VACUUM (ANALYZE) visibility_search_attributes;\n")
            send("SELECT 'analyzed', extract(epoch FROM clock_timestamp());\nCHECKPOINT;\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"psql load exited with {rc}; see {log_path}")
    # The phase boundaries, from the timestamps psql printed into the log.
    stamps: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        parts = line.split("|")
        if len(parts) == 2 and parts[0].strip() in ("copied", "indexed", "analyzed"):
            stamps[parts[0].strip()] = float(parts[1])
    total = time.perf_counter() - t0
    phases = {"total_s": total}
    if len(stamps) == 3:
        phases["index_s"] = stamps["indexed"] - stamps["copied"]
        phases["analyze_s"] = stamps["analyzed"] - stamps["indexed"]
        phases["insert_s"] = total - phases["index_s"] - phases["analyze_s"]
    return phases


# The queries --------------------------------------------------------------------------------


@dataclass
class Filter:
    """One list filter: its query text, the store SQL's WHERE fragment per dialect (with
    placeholders from $2), its parameters, and a check of one returned run."""

    label: str
    query: str
    where: dict[str, str]
    params: list[Any]
    accepts: Callable[[Any], bool]
    expected_count: int | None


def micros(ts: Any) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def sort_key(info: Any) -> tuple[int, int, str]:
    """The list order as an ascending key: open first, close and start descending, run id."""
    close = micros(info.close_time) if info.HasField("close_time") else INT64_MAX
    return (-close, -micros(info.start_time), info.execution.run_id)


def attribute(info: Any, name: str) -> Any:
    payload = info.search_attributes.indexed_fields.get(name)
    return None if payload is None or not payload.data else json.loads(payload.data)


def rfc3339(us: int) -> str:
    dt = datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000:06d}Z"


def side(n: int, cond: str) -> str:
    return SIDE_EXISTS.format(n=n, cond=cond)


def list_filters(loaded: Loaded, rows: int) -> list[Filter]:
    cutoff = loaded.newest_start_us - DAY_US
    one_id = f"wf-{rows // 2}"
    prefix_matches = sum(1 for i in range(rows) if str(i).startswith(ID_PREFIX[3:]))
    def same(sql: str) -> dict[str, str]:
        return {"sqlite": sql, "postgres": sql}

    return [
        Filter("(empty)", "", same(""), [], lambda i: True, loaded.rows),
        Filter("running", "ExecutionStatus = 'Running'", same("status = $2"), [RUNNING],
               lambda i: i.status == RUNNING and not i.HasField("close_time"),
               loaded.by_status.get(RUNNING, 0)),
        Filter("type", "WorkflowType = 'T3'", same("workflow_type = $2"), ["T3"],
               lambda i: i.type.name == "T3", loaded.by_type.get("T3", 0)),
        Filter("queue+status", "TaskQueue = 'q7' AND ExecutionStatus = 'Completed'",
               same("task_queue = $2 AND status = $3"), ["q7", COMPLETED],
               lambda i: i.task_queue == "q7" and i.status == COMPLETED, loaded.queue7_completed),
        Filter("started last day", f"StartTime > '{rfc3339(cutoff)}'", same("start_time > $2"),
               [cutoff], lambda i: micros(i.start_time) > cutoff, loaded.started_after(cutoff)),
        Filter("workflow id", f"WorkflowId = '{one_id}'", same("workflow_id = $2"), [one_id],
               lambda i: i.execution.workflow_id == one_id, 1 if rows > rows // 2 else 0),
        Filter("id prefix", f"WorkflowId STARTS_WITH '{ID_PREFIX}'",
               {"sqlite": "workflow_id GLOB $2", "postgres": "workflow_id LIKE $2 ESCAPE '!'"},
               [{"sqlite": ID_PREFIX + "*", "postgres": ID_PREFIX + "%"}],
               lambda i: i.execution.workflow_id.startswith(ID_PREFIX), prefix_matches),
        Filter("keyword", f"{KEYWORD_ATTR} = 'k5'", same(side(2, "sa.text_value = $3")),
               [KEYWORD_ATTR, "k5"], lambda i: attribute(i, KEYWORD_ATTR) == "k5",
               loaded.keyword5),
        Filter("int", f"{INT_ATTR} > 90", same(side(2, "sa.int_value > $3")), [INT_ATTR, 90],
               lambda i: (attribute(i, INT_ATTR) or -1) > 90, loaded.int_over_90),
        Filter("keyword+status", f"{KEYWORD_ATTR} = 'k5' AND ExecutionStatus = 'Completed'",
               same(side(2, "sa.text_value = $3") + " AND status = $4"),
               [KEYWORD_ATTR, "k5", COMPLETED],
               lambda i: attribute(i, KEYWORD_ATTR) == "k5" and i.status == COMPLETED,
               loaded.keyword5_completed),
    ]


def dialect_params(params: list[Any], dialect: str) -> list[Any]:
    return [p[dialect] if isinstance(p, dict) else p for p in params]


def list_sql(dialect: str, f: Filter, namespace_id: str, page_size: int,
             after: tuple[int, int, str] | None) -> tuple[str, list[Any]]:
    """The statement SqlVisibilityStore::List runs, and its parameters."""
    params: list[Any] = [namespace_id, *dialect_params(f.params, dialect)]
    sql = f"SELECT {LIST_COLUMNS}, {ORDER_KEY}, start_time, run_id FROM visibility " \
          "WHERE namespace_id = $1"
    if f.where[dialect]:
        sql += f" AND ({f.where[dialect]})"
    if after is not None:
        n = len(params)
        params += list(after)
        a, b, c = f"${n + 1}", f"${n + 2}", f"${n + 3}"
        sql += (f" AND (({ORDER_KEY} < {a}) OR ({ORDER_KEY} = {a} AND start_time < {b}) OR "
                f"({ORDER_KEY} = {a} AND start_time = {b} AND run_id > {c}))")
    params.append(page_size + 1)
    sql += f" ORDER BY {ORDER_BY} LIMIT ${len(params)}"
    return sql, params


def count_sql(dialect: str, where: str, params: list[Any], namespace_id: str,
              group: bool) -> tuple[str, list[Any]]:
    """The statement SqlVisibilityStore::CountRuns runs, and its parameters."""
    head = "SELECT status, COUNT(*)" if group else "SELECT COUNT(*)"
    sql = f"{head} FROM visibility WHERE namespace_id = $1"
    if where:
        sql += f" AND ({where})"
    if group:
        sql += " GROUP BY status ORDER BY status"
    return sql, [namespace_id, *dialect_params(params, dialect)]


# Plans ----------------------------------------------------------------------------------------


def sqlite_plan(db_path: Path, sql: str, params: list[Any], limit_s: float) -> dict[str, Any]:
    """EXPLAIN QUERY PLAN, and the statement's median time over 3 runs through Python's
    sqlite3 (the daemon's library), each given up after `limit_s` (sql_ms None; 0: not
    run)."""
    text = re.sub(r"\$(\d+)", r"?\1", sql)
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = con.execute("EXPLAIN QUERY PLAN " + text, params).fetchall()
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
        times = []
        for _ in range(3 if limit_s > 0 else 0):
            t = time.perf_counter()
            deadline = t + limit_s
            con.set_progress_handler(lambda: int(time.perf_counter() > deadline), 10_000)
            try:
                con.execute(text, params).fetchall()
            except sqlite3.OperationalError:  # interrupted
                return {"plan": "\n".join(lines), "sql_ms": None}
            times.append(time.perf_counter() - t)
    finally:
        con.close()
    if not times:
        return {"plan": "\n".join(lines), "sql_ms": None}
    return {"plan": "\n".join(lines), "sql_ms": statistics.median(times) * 1000}


def pg_literal(v: Any) -> str:
    if isinstance(v, int):
        return f"{v}::bigint"  # the daemon binds integers as int8
    return "'" + str(v).replace("'", "''") + "'"


def postgres_plan(cluster: PostgresCluster, database: str, sql: str, params: list[Any],
                  analyze: bool) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement with its parameters as literals (the
    daemon's unnamed statements are planned with their values, as literals are); plain
    EXPLAIN when `analyze` is false."""
    text = re.sub(r"\$(\d+)", lambda m: pg_literal(params[int(m.group(1)) - 1]), sql)
    options = "(ANALYZE, BUFFERS) " if analyze else ""
    plan = psql_query(cluster, database, f"EXPLAIN {options}{text}").rstrip()
    m = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return {"plan": plan, "sql_ms": float(m.group(1)) if m else None}


# The measurement ------------------------------------------------------------------------------


@dataclass
class Figure:
    """The latencies of one call, repeated."""

    label: str
    query: str
    what: str  # "page 1", "page 10", "count"
    times_s: list[float]
    matches: int | None = None
    sql: str = ""
    params: list[Any] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    walk_s: float | None = None  # deep pages: the walk from page 2 to it, once

    timed_out_s: float | None = None  # a call passed --call-timeout: no figure

    def median_ms(self) -> float:
        if self.timed_out_s is not None:
            return self.timed_out_s * 1000
        return statistics.median(self.times_s) * 1000

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "query": self.query, "what": self.what,
                               "matches": self.matches}
        if self.timed_out_s is not None:
            out.update(calls=0, timed_out_s=self.timed_out_s, median_ms=None, p95_ms=None)
        else:
            t = sorted(self.times_s)
            out.update(calls=len(t), median_ms=statistics.median(t) * 1000,
                       p95_ms=percentile_ms(t, 95), min_ms=t[0] * 1000, max_ms=t[-1] * 1000)
        if self.walk_s is not None:
            out["walk_ms"] = self.walk_s * 1000
        if self.plan is not None:
            out["sql"] = self.sql
            out["params"] = [p if isinstance(p, (int, str)) else repr(p) for p in self.params]
            out.update(self.plan)
        return out


class Check(Exception):
    pass


class CallTimeout(Exception):
    pass


class Session:
    """The client of the daemon under test, with a deadline on every call. A call that
    passes it leaves its statement running in the daemon, so the daemon is restarted (on
    the same store) before anything else is measured."""

    def __init__(self, server: AlmanacServer, namespace: str, timeout_s: float) -> None:
        self.server = server
        self.namespace = namespace
        self.timeout = timedelta(seconds=timeout_s)
        self.client: Client | None = None

    async def connect(self) -> None:
        self.client = await Client.connect(self.server.address, namespace=self.namespace)

    async def _call(self, method: Callable[..., Any], req: Any) -> Any:
        try:
            return await method(req, timeout=self.timeout)
        except RPCError as err:
            # The SDK's core reports a deadline it enforced itself as "Timeout expired".
            if err.status == RPCStatusCode.DEADLINE_EXCEEDED or "timeout" in str(err).lower():
                raise CallTimeout() from err
            raise

    def count(self, query: str) -> Any:
        assert self.client is not None
        return self._call(self.client.workflow_service.count_workflow_executions,
                          CountWorkflowExecutionsRequest(namespace=self.namespace, query=query))

    def page(self, query: str, page_size: int, token: bytes = b"") -> Any:
        assert self.client is not None
        return self._call(self.client.workflow_service.list_workflow_executions,
                          ListWorkflowExecutionsRequest(namespace=self.namespace, query=query,
                                                        page_size=page_size,
                                                        next_page_token=token))

    async def restart(self) -> None:
        log("restarting the daemon, to end the statement that timed out")
        await asyncio.to_thread(self.server.restart)
        await self.connect()


async def timed(call: Callable[[], Any], repeat: int, budget_s: float) -> tuple[list[float], Any]:
    """One unmeasured call, then up to `repeat` measured ones (fewer, but at least 3, when
    the first took long enough that `repeat` would pass `budget_s`)."""
    t = time.perf_counter()
    first = await call()
    once = time.perf_counter() - t
    n = max(3, min(repeat, int(budget_s / max(once, 1e-6))))
    times = []
    answer = first
    for _ in range(n):
        t = time.perf_counter()
        answer = await call()
        times.append(time.perf_counter() - t)
    return times, answer


def check_page(f: Filter, page: Any, expected_len: int, what: str) -> None:
    if len(page.executions) != expected_len:
        raise Check(f"{f.label} {what}: {len(page.executions)} runs, expected {expected_len}")
    keys = [sort_key(i) for i in page.executions]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise Check(f"{f.label} {what}: runs out of order")
    for info in page.executions:
        if not f.accepts(info):
            raise Check(f"{f.label} {what}: {info.execution.workflow_id} does not match")


async def measure(args: argparse.Namespace, session: Session, loaded: Loaded,
                  namespace_id: str, store: str) -> list[Figure]:
    """For each filter: its count, its first page and its deep page; then the count grouped
    by ExecutionStatus. A figure whose call passes --call-timeout is recorded as such, and
    the filter's later figures are skipped when they depend on it."""
    figures: list[Figure] = []
    size = args.page_size

    async def figure(label: str, query: str, what: str, call: Callable[[], Any],
                     sql_params: tuple[str, list[Any]], matches: int | None = None,
                     **extra: Any) -> tuple[Figure, Any]:
        try:
            times, answer = await timed(call, args.repeat, args.budget)
        except CallTimeout:
            log(f"{label}: {what} passed {args.call_timeout:g} s")
            fig = Figure(label, query, what, [], matches, *sql_params,
                         timed_out_s=args.call_timeout)
            figures.append(fig)
            await session.restart()
            return fig, None
        fig = Figure(label, query, what, times, matches, *sql_params, **extra)
        figures.append(fig)
        return fig, answer

    for f in list_filters(loaded, args.rows):
        fig, answer = await figure(
            f.label, f.query, "count", lambda q=f.query: session.count(q),
            count_sql(store, f.where[store], f.params, namespace_id, False))
        matches = f.expected_count
        if answer is not None:
            if f.expected_count is not None and answer.count != f.expected_count:
                raise Check(f"{f.label}: count {answer.count}, the loader wrote "
                            f"{f.expected_count}")
            matches = answer.count
            fig.matches = matches
            log(f"{f.label}: count median {fig.median_ms():.1f} ms ({matches} matches)")

        fig, first = await figure(
            f.label, f.query, "page 1", lambda q=f.query: session.page(q, size),
            list_sql(store, f, namespace_id, size, None), matches)
        if first is None:
            continue
        assert matches is not None
        check_page(f, first, min(size, matches), "page 1")
        log(f"{f.label}: page 1 median {fig.median_ms():.1f} ms")

        deep = args.deep_page
        if deep < 2 or matches <= (deep - 1) * size:
            continue
        # Walk to the deep page once, checking the order across pages.
        answer, keys, last_key = first, [sort_key(i) for i in first.executions], None
        walk_began = time.perf_counter()
        try:
            for n in range(2, deep + 1):
                last = answer.executions[-1]
                last_key = (micros(last.close_time) if last.HasField("close_time")
                            else INT64_MAX, micros(last.start_time), last.execution.run_id)
                token = answer.next_page_token
                if not token:
                    raise Check(f"{f.label}: no token after page {n - 1}")
                answer = await session.page(f.query, size, token)
                keys += [sort_key(i) for i in answer.executions]
        except CallTimeout:
            log(f"{f.label}: a page before page {deep} passed {args.call_timeout:g} s")
            await session.restart()
            continue
        walk_s = time.perf_counter() - walk_began
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise Check(f"{f.label}: pages 1..{deep} out of order or overlapping")
        check_page(f, answer, min(size, matches - (deep - 1) * size), f"page {deep}")
        assert last_key is not None
        fig, again = await figure(
            f.label, f.query, f"page {deep}", lambda t=token, q=f.query: session.page(q, size, t),
            list_sql(store, f, namespace_id, size, last_key), matches, walk_s=walk_s)
        if again is None:
            continue
        if [i.execution.run_id for i in again.executions] != \
                [i.execution.run_id for i in answer.executions]:
            raise Check(f"{f.label}: page {deep} changed between calls")
        log(f"{f.label}: page {deep} median {fig.median_ms():.1f} ms "
            f"(pages 2..{deep} walked in {walk_s * 1000:.0f} ms)")

    fig, answer = await figure("by status", "GROUP BY ExecutionStatus", "count",
                               lambda: session.count("GROUP BY ExecutionStatus"),
                               count_sql(store, "", [], namespace_id, True), loaded.rows)
    if answer is not None:
        groups = {json.loads(g.group_values[0].data): g.count for g in answer.groups}
        want = {}
        for status, n in loaded.by_status.items():
            name = WorkflowExecutionStatus.Name(status).removeprefix(
                "WORKFLOW_EXECUTION_STATUS_")
            want[name.title().replace("_", "")] = n
        if groups != want or answer.count != loaded.rows:
            raise Check(f"count by status: {groups}, the loader wrote {want}")
        log(f"count GROUP BY ExecutionStatus: median {fig.median_ms():.1f} ms")
    return figures


# One store ------------------------------------------------------------------------------------


async def prepare_namespace(server: AlmanacServer, ns: str) -> str:
    """Registers the custom attributes; returns the namespace id."""
    client = await Client.connect(server.address, namespace=ns)
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=ns, search_attributes=ATTRIBUTES))
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=ns))
    for name, kind in ATTRIBUTES.items():
        if listed.custom_attributes.get(name) != kind:
            raise RuntimeError(f"{name} not registered: {dict(listed.custom_attributes)}")
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=ns))
    return described.namespace_info.id


def run_store(args: argparse.Namespace, store: str) -> dict[str, Any]:
    cluster: PostgresCluster | None = None
    server: AlmanacServer | None = None
    work_dir = Path(tempfile.mkdtemp(prefix=f"almanac-{LOG_NAME}-"))
    began = time.perf_counter()
    try:
        if store == "postgres":
            log("starting a private PostgreSQL cluster")
            cluster = PostgresCluster()
            cluster.start()
        server = AlmanacServer(store, work_dir, postgres=cluster)
        log(f"starting almanac on {store} ({server.binary}) to migrate the schema")
        start_server(server, args.binary_wait)
        namespace_id = asyncio.run(prepare_namespace(server, args.namespace))
        server.stop()

        gen = Generator(args.rows, namespace_id, args.seed,
                        end_us=int(time.time()) * 1_000_000)
        log(f"loading {args.rows} runs into namespace {args.namespace} ({namespace_id})")
        if store == "sqlite":
            load = sqlite_load(work_dir / "almanac.db", gen, not args.no_analyze)
        else:
            assert cluster is not None and server.database is not None
            load = postgres_load(cluster, server.database, gen, work_dir / "load-psql.log",
                                 not args.no_analyze)
        loaded = gen.loaded
        gen.side = []
        load["generate_s"] = loaded.generate_s
        log(f"loaded {loaded.rows} runs and {loaded.side_rows} attribute rows: "
            + ", ".join(f"{k} {v:.1f}" for k, v in load.items()))
        size = database_size(store, work_dir, cluster, server)

        log("starting almanac on the loaded store")
        start_server(server, args.binary_wait)

        async def go() -> list[Figure]:
            session = Session(server, args.namespace, args.call_timeout)
            await session.connect()
            return await measure(args, session, loaded, namespace_id, store)

        try:
            figures = asyncio.run(go())
        except BaseException:
            log(f"daemon log tail ({server.log_path}):\n{server.log_tail(30)}")
            raise
        for fig in figures:
            if args.plans or fig.median_ms() > args.slow_ms:
                if store == "sqlite":
                    fig.plan = sqlite_plan(work_dir / "almanac.db", fig.sql, fig.params,
                                           0 if fig.timed_out_s else args.call_timeout)
                else:
                    assert cluster is not None and server.database is not None
                    fig.plan = postgres_plan(cluster, server.database, fig.sql, fig.params,
                                             analyze=fig.timed_out_s is None)
        return {
            "store": store,
            "rows": loaded.rows,
            "attribute_rows": loaded.side_rows,
            "params": {"page_size": args.page_size, "deep_page": args.deep_page,
                       "repeat": args.repeat, "seed": args.seed,
                       "analyzed": not args.no_analyze},
            "load_s": load,
            "database_mb": size,
            "figures": [f.summary() for f in figures],
            "wall_s": time.perf_counter() - began,
        }
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        if args.keep:
            log(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def database_size(store: str, work_dir: Path, cluster: PostgresCluster | None,
                  server: AlmanacServer) -> dict[str, float]:
    if store == "sqlite":
        return {"file": (work_dir / "almanac.db").stat().st_size / 2**20}
    assert cluster is not None and server.database is not None
    out = {}
    for table in ("visibility", "visibility_search_attributes"):
        heap, indexes = psql_query(
            cluster, server.database,
            f"SELECT pg_relation_size('{table}'), pg_indexes_size('{table}')").strip().split("|")
        out[f"{table}_heap"] = int(heap) / 2**20
        out[f"{table}_indexes"] = int(indexes) / 2**20
    return out


# Output -------------------------------------------------------------------------------------


def print_report(r: dict[str, Any], slow_ms: float) -> None:
    p = r["params"]
    deep = f"page {p['deep_page']}"
    print(f"== {r['store']}: {r['rows']:,} runs, {r['attribute_rows']:,} attribute rows "
          f"({'analyzed' if p['analyzed'] else 'not analyzed'}); page size "
          f"{p['page_size']}; up to {p['repeat']} calls each ==")
    print("load (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["load_s"].items())
          + "; size (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in r["database_mb"].items()))
    rows: dict[str, dict[str, Any]] = {}
    for f in r["figures"]:
        rows.setdefault(f["query"], {})[f["what"]] = f
    print(f"{'filter':<56} {'matches':>9} | {'page 1':>15} | {deep:>15} | {'count':>17}")
    print(f"{'':<56} {'':>9} | {'median    p95':>15} | {'median    p95':>15} | "
          f"{'median    p95':>17}")

    def cell(f: dict[str, Any] | None, width: int) -> str:
        if f is None:
            return " " * width
        if f.get("timed_out_s") is not None:
            return f"{'> ' + format(f['timed_out_s'], 'g') + ' s':>{width}}"
        text = f"{f['median_ms']:7.1f} {f['p95_ms']:7.1f}"
        if f["calls"] < p["repeat"]:
            text += f" ({f['calls']})"
        return f"{text:>{width}}"

    for query, by in rows.items():
        matches = next(iter(by.values()))["matches"]
        matches = "" if matches is None else matches
        print(f"{(query or '(empty)')[:56]:<56} {matches:>9} | {cell(by.get('page 1'), 15)} | "
              f"{cell(by.get(deep), 15)} | {cell(by.get('count'), 17)}")
    print(f"(ms; (n): only n calls, the figure's time budget; walks of pages 2..{p['deep_page']}: "
          + ", ".join(f"{f['walk_ms']:.0f}" for f in r["figures"] if "walk_ms" in f) + " ms)")
    for f in r["figures"]:
        if "plan" not in f:
            continue
        sql_ms = "n/a" if f["sql_ms"] is None else f"{f['sql_ms']:.1f} ms"
        if f.get("timed_out_s") is not None:
            took = f"timed out (> {f['timed_out_s']:g} s)"
        else:
            slow = " (slow)" if f["median_ms"] > slow_ms else ""
            took = f"median {f['median_ms']:.1f} ms{slow}"
        print(f"\n-- {f['query'] or '(empty)'} [{f['what']}]: {took}; the SQL alone {sql_ms}")
        print(f["sql"])
        print(f"params: {f['params']}")
        print(f["plan"])
    print(f"\nwall time {r['wall_s']:.0f} s\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure ListWorkflowExecutions / CountWorkflowExecutions latency over a "
        "bulk-loaded visibility store, on SQLite and PostgreSQL.")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="runs loaded into visibility (default 1000000)")
    parser.add_argument("--repeat", type=int, default=20,
                        help="measured calls per figure (default 20)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds one figure may take; fewer calls (at least 3) beyond "
                        "(default 30)")
    parser.add_argument("--call-timeout", type=float, default=30.0,
                        help="seconds one call may take; past it the figure is recorded as "
                        "timed out and the daemon restarted (default 30)")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--deep-page", type=int, default=10,
                        help="the page number reached by following tokens (default 10)")
    parser.add_argument("--slow-ms", type=float, default=100.0,
                        help="medians above this get their SQL and plan printed (default 100)")
    parser.add_argument("--plans", action="store_true", help="print every figure's plan")
    parser.add_argument("--no-analyze", action="store_true",
                        help="skip ANALYZE after the load (SQLite's state unless someone runs "
                        "it: the daemon does not)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--binary-wait", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per store instead of a table")
    args = parser.parse_args(argv)
    if min(args.rows, args.repeat, args.page_size, args.deep_page) < 1:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_stdout_for_report()
    stores = ("postgres", "sqlite") if args.store == "both" else (args.store,)
    status = 0
    for store in stores:
        try:
            result = run_store(args, store)
        except Exception as err:  # noqa: BLE001 - reported, and the exit status says so
            log(f"{store}: failed: {type(err).__name__}: {err}")
            status = 1
            continue
        if args.json:
            print(json.dumps(result, separators=(",", ":"), default=str))
        else:
            print_report(result, args.slow_ms)
    return status


if __name__ == "__main__":
    sys.exit(main())
