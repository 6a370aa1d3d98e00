"""Processes the integration suite runs: a throwaway PostgreSQL cluster, Almanac daemons, and
Temporal's Web UI server with a recording gRPC proxy in front of the server under test.

Everything here is synchronous and blocking; the fixtures in conftest.py call it from session
scope. Nothing in this module knows about pytest.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 20.0
STOP_GRACE_S = 10.0


def almanac_binary() -> Path:
    """The daemon under test: $ALMANAC_BIN, else the default CMake build output."""
    return Path(os.environ.get("ALMANAC_BIN", REPO_ROOT / "build" / "src" / "almanac"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 80) -> str:
    """The last `lines` lines of a text file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    return "\n".join(text.splitlines()[-lines:])


class PostgresCluster:
    """A private PostgreSQL cluster on 127.0.0.1 with trust auth, for one test session.

    initdb refuses to run as root, so when the suite runs as root (as in CI) the server
    binaries run as the `postgres` OS user in a directory that user owns.
    """

    SUPERUSER = "postgres"
    ROLE = "almanac"

    def __init__(self, base_dir: Path | None = None) -> None:
        self.bin_dir = self._find_bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="almanac-pg-", dir=base_dir))
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.host = "127.0.0.1"
        self.port = free_port()
        self._as_postgres_user = os.geteuid() == 0
        if self._as_postgres_user:
            shutil.chown(self.dir, user="postgres", group="postgres")

    @staticmethod
    def _find_bin_dir() -> Path:
        override = os.environ.get("ALMANAC_PG_BIN")
        candidates = [Path(override)] if override else sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        for bin_dir in candidates:
            if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
                return bin_dir
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(set ALMANAC_PG_BIN to the directory holding initdb and pg_ctl)"
        )

    def _server_command(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / tool), *args]
        if self._as_postgres_user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def _run(self, cmd: list[str], timeout: float = 60) -> None:
        result = subprocess.run(
            cmd, cwd=self.dir, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited with {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"server log:\n{tail(self.log_path)}"
            )

    def start(self) -> None:
        self._run(
            self._server_command(
                "initdb",
                "--pgdata", str(self.data_dir),
                "--username", self.SUPERUSER,
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
            )
        )
        # Durability settings are off: this cluster lives for one test run, and the daemon,
        # not PostgreSQL, is what the tests crash.
        options = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            self._server_command(
                "pg_ctl", "start", "--pgdata", str(self.data_dir),
                "--log", str(self.log_path), "--wait", "--timeout", "30",
                "-o", options,
            )
        )
        self.psql(f"CREATE ROLE {self.ROLE} LOGIN SUPERUSER")

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Runs one SQL statement as the cluster's superuser."""
        self._run(
            [
                str(self.bin_dir / "psql"),
                "--no-psqlrc", "--quiet",
                "--host", self.host, "--port", str(self.port),
                "--username", self.SUPERUSER, "--dbname", database,
                "--set", "ON_ERROR_STOP=1",
                "--command", sql,
            ]
        )

    def create_database(self) -> str:
        """A new, empty database owned by the `almanac` role; returns its name."""
        name = f"almanac_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name} OWNER {self.ROLE}")
        return name

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(
                self._server_command(
                    "pg_ctl", "stop", "--pgdata", str(self.data_dir),
                    "--mode", "immediate", "--wait",
                )
            )
        shutil.rmtree(self.dir, ignore_errors=True)


class AlmanacServer:
    """One Almanac daemon on a fixed port and a fixed store, which survives restarts.

    `store` is "sqlite" (start-dev on a database file) or "postgres" (schema setup, then
    server, against its own database in a PostgreSQL cluster). The daemon's stderr and stdout
    go to `log_path`, appended across restarts.

    `extra_config` is top-level YAML appended to the daemon's config file (history cache
    bounds, ...) and `persistence_config` YAML lines under `persistence:` (fault injection);
    with either, the SQLite daemon runs `server --config` instead of start-dev. `database`
    names an existing PostgreSQL database to share with another daemon.
    """

    def __init__(
        self,
        store: str,
        work_dir: Path,
        postgres: PostgresCluster | None = None,
        extra_config: str = "",
        persistence_config: str = "",
        database: str | None = None,
        name: str | None = None,
    ) -> None:
        if store not in ("sqlite", "postgres"):
            raise ValueError(f"unknown store {store!r}")
        if store == "postgres" and postgres is None:
            raise ValueError("the postgres store needs a PostgresCluster")
        self.store = store
        self.binary = almanac_binary()
        self.work_dir = work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = self.work_dir / f"almanac-{name or store}.log"
        self._postgres = postgres
        self._extra_config = extra_config
        self._persistence_config = persistence_config
        self.database = database
        self._process: subprocess.Popen[bytes] | None = None
        self._config_path: Path | None = None
        self._schema_ready = False

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the daemon and returns once it answers health checks."""
        if self.is_running():
            raise RuntimeError(f"almanac ({self.store}) is already running")
        if not self.binary.exists():
            raise RuntimeError(
                f"almanac binary not found at {self.binary} (build it, or set ALMANAC_BIN)"
            )
        custom = bool(self._extra_config or self._persistence_config)
        if (self.store == "postgres" or custom) and not self._schema_ready:
            self._setup_schema()
        self._spawn(self._serve_command())
        self._wait_until_ready()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the daemon has not exited after a grace period."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill9(self) -> None:
        """Kills the daemon with SIGKILL: no shutdown path runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self) -> None:
        """Stops the daemon if it runs, then starts it again on the same port and store."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 80) -> str:
        return tail(self.log_path, lines)

    # Internals ---------------------------------------------------------------------------

    def _serve_command(self) -> list[str]:
        if self.store == "sqlite" and not (self._extra_config or self._persistence_config):
            return [
                str(self.binary), "start-dev",
                "--ip", "127.0.0.1",
                "--port", str(self.port),
                "--db-filename", str(self.work_dir / "almanac.db"),
            ]
        return [str(self.binary), "server", "--config", str(self._config_path)]

    def _setup_schema(self) -> None:
        if self.store == "postgres":
            assert self._postgres is not None
            if self.database is None:
                self.database = self._postgres.create_database()
            store_config = (
                "persistence:\n"
                "  driver: postgres\n"
                "  postgres:\n"
                f"    host: {self._postgres.host}\n"
                f"    port: {self._postgres.port}\n"
                f"    user: {PostgresCluster.ROLE}\n"
                '    password: ""\n'
                f"    database: {self.database}\n"
            )
        else:
            store_config = (
                "persistence:\n"
                "  driver: sqlite\n"
                "  sqlite:\n"
                f"    path: {self.work_dir / 'almanac.db'}\n"
            )
        self._config_path = self.work_dir / f"almanac-{self.port}.yaml"
        self._config_path.write_text(
            store_config
            + self._persistence_config
            + "frontend:\n"
            "  bind_ip: 127.0.0.1\n"
            f"  grpc_port: {self.port}\n"
            "namespaces: [default]\n"
            + self._extra_config
        )
        cmd = [str(self.binary), "schema", "setup", "--config", str(self._config_path)]
        with self.log_path.open("ab") as log:
            log.write(f"=== {' '.join(cmd)}\n".encode())
            log.flush()
            result = subprocess.run(cmd, stdout=log, stderr=log, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(
                f"almanac schema setup exited with {result.returncode}\n{self.log_tail()}"
            )
        self._schema_ready = True

    def _spawn(self, cmd: list[str]) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"=== {' '.join(cmd)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.work_dir
            )

    def _wait_until_ready(self) -> None:
        """Polls grpc.health.v1.Health/Check until the daemon answers, or fails."""
        deadline = time.monotonic() + READY_DEADLINE_S
        last_error = "no attempt"
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if not self.is_running():
                    raise RuntimeError(
                        f"almanac ({self.store}) exited with {self.exit_code()} "
                        f"before it was ready\n{self.log_tail()}"
                    )
                try:
                    response = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last_error = f"health status {response.status}"
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                        # Up, without a health service; test_admin reports that separately.
                        return
                    last_error = f"{err.code()}: {err.details()}"
                time.sleep(0.1)
        self.kill9()
        raise RuntimeError(
            f"almanac ({self.store}) not ready within {READY_DEADLINE_S:g} s "
            f"(last health check: {last_error})\n{self.log_tail()}"
        )


# The Temporal Web UI -----------------------------------------------------------------------


def web_ui_binary() -> Path:
    """Temporal's UI server: $ALMANAC_UI_SERVER, else what scripts/build-web-ui.sh builds."""
    return Path(
        os.environ.get("ALMANAC_UI_SERVER", REPO_ROOT / "build" / "web-ui" / "ui-server")
    )


class GrpcRecorder:
    """A transparent gRPC proxy on 127.0.0.1 that records every call passing through it.

    The UI server turns each /api/v1 request into one WorkflowService or OperatorService
    call (grpc-gateway); pointing it at this proxy instead of the server under test shows
    exactly which gRPC methods the UI uses and what each answered. Every method of those
    services is unary, so the proxy forwards raw bytes of unary calls only.
    """

    MAX_MESSAGE = 64 * 1024 * 1024  # the UI server's own limit

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls: list[tuple[str, str, str]] = []  # (method, status code name, details)
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._server: grpc.Server | None = None
        self.address = ""

    def start(self) -> None:
        options = [
            ("grpc.max_receive_message_length", self.MAX_MESSAGE),
            ("grpc.max_send_message_length", self.MAX_MESSAGE),
        ]
        self._channel = grpc.insecure_channel(self.target, options=options)
        self._server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=16), options=options
        )
        self._server.add_generic_rpc_handlers([_ForwardingHandler(self)])
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.address = f"127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def record(self, method: str, code: grpc.StatusCode, details: str) -> None:
        with self._lock:
            self.calls.append((method, code.name, details))

    def snapshot(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self.calls)

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        assert self._channel is not None
        metadata = [
            (key, value)
            for key, value in context.invocation_metadata()
            if not key.startswith(":") and key not in ("user-agent", "te", "content-type")
        ]
        call = self._channel.unary_unary(method)  # no (de)serializers: raw bytes
        remaining = context.time_remaining()  # about 2**63 when the caller set no deadline
        timeout = remaining if remaining is not None and remaining < 3600 else None
        try:
            response, outcome = call.with_call(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            details = err.details() if hasattr(err, "details") else str(err)
            self.record(method, code, details or "")
            trailing = getattr(err, "trailing_metadata", lambda: None)() or ()
            context.set_trailing_metadata(tuple(trailing))
            context.abort(code, details or "")
        self.record(method, grpc.StatusCode.OK, "")
        context.send_initial_metadata(tuple(outcome.initial_metadata() or ()))
        return response


class _ForwardingHandler(grpc.GenericRpcHandler):
    def __init__(self, recorder: GrpcRecorder) -> None:
        self._recorder = recorder

    def service(self, handler_call_details):
        method = handler_call_details.method
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self._recorder.forward(method, request, context)
        )


class WebUIServer:
    """Temporal's own UI server (github.com/temporalio/ui-server) in front of `temporal_address`.

    Writes its config to `work_dir`/config/almanac.yaml (auth off, write actions on, no
    release-news fetch, plain HTTP on 127.0.0.1 and a free port) and runs
    `ui-server --root work_dir --config config --env almanac start`. Its log, one JSON line per
    HTTP request it served, goes to `work_dir`/ui-server.log.
    """

    def __init__(self, temporal_address: str, work_dir: Path) -> None:
        self.binary = web_ui_binary()
        self.temporal_address = temporal_address
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / "ui-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def config_yaml(self) -> str:
        return (
            f"temporalGrpcAddress: {self.temporal_address}\n"
            "host: 127.0.0.1\n"
            f"port: {self.port}\n"
            "publicPath: ''\n"
            "enableUi: true\n"
            "defaultNamespace: default\n"
            "refreshInterval: 0s\n"
            "disableNewsFetch: true\n"
            "notifyOnNewVersion: false\n"
            "hideLogs: false\n"
            "auth:\n"
            "  enabled: false\n"
            "cors:\n"
            "  cookieInsecure: true\n"
            "  allowOrigins: []\n"
        )

    def start(self) -> None:
        if not self.binary.exists():
            raise RuntimeError(
                f"Temporal UI server not found at {self.binary} "
                "(run scripts/build-web-ui.sh, or set ALMANAC_UI_SERVER)"
            )
        config_dir = self.work_dir / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "almanac.yaml").write_text(self.config_yaml())
        cmd = [
            str(self.binary), "--root", str(self.work_dir.resolve()), "--config", "config",
            "--env", "almanac", "start",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"=== {' '.join(cmd)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.work_dir
            )
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"ui-server exited with {self._process.returncode}\n{tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"ui-server not ready within {READY_DEADLINE_S:g} s\n{tail(self.log_path)}"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
