"""System information, health and namespace administration."""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.api.enums.v1 import NamespaceState
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetClusterInfoRequest,
    GetSystemInfoRequest,
    ListNamespacesRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from harness import AlmanacServer
from helpers import new_worker
from workflows import EchoWorkflow

RPC_TIMEOUT = timedelta(seconds=10)


async def test_get_system_info(client: Client):
    info = await client.workflow_service.get_system_info(
        GetSystemInfoRequest(), timeout=RPC_TIMEOUT
    )
    assert info.server_version
    assert info.HasField("capabilities")


async def test_get_cluster_info(client: Client):
    info = await client.workflow_service.get_cluster_info(
        GetClusterInfoRequest(), timeout=RPC_TIMEOUT
    )
    assert info.server_version
    assert info.cluster_name
    assert info.history_shard_count >= 1


@pytest.mark.parametrize(
    "service", ["", "temporal.api.workflowservice.v1.WorkflowService"], ids=["server", "workflow"]
)
async def test_health_check(server: AlmanacServer, service: str):
    async with grpc.aio.insecure_channel(server.address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def list_namespace_names(client: Client) -> set[str]:
    names: set[str] = set()
    request = ListNamespacesRequest(page_size=100)
    while True:
        page = await client.workflow_service.list_namespaces(request, timeout=RPC_TIMEOUT)
        names.update(ns.namespace_info.name for ns in page.namespaces)
        if not page.next_page_token:
            return names
        request.next_page_token = page.next_page_token


async def describe_namespace(client: Client, name: str):
    return await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=name), timeout=RPC_TIMEOUT
    )


async def test_namespace_lifecycle(client: Client):
    name = f"ns-{uuid.uuid4().hex[:12]}"
    three_days = Duration(seconds=3 * 24 * 3600)
    seven_days = Duration(seconds=7 * 24 * 3600)

    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name,
            description="registered by the integration tests",
            workflow_execution_retention_period=three_days,
        ),
        timeout=RPC_TIMEOUT,
    )

    described = await describe_namespace(client, name)
    assert described.namespace_info.name == name
    uuid.UUID(described.namespace_info.id)  # raises unless the id is a UUID
    assert described.namespace_info.state == NamespaceState.NAMESPACE_STATE_REGISTERED
    assert described.namespace_info.description == "registered by the integration tests"
    assert described.config.workflow_execution_retention_ttl == three_days

    assert {name, "default"} <= await list_namespace_names(client)

    with pytest.raises(RPCError) as duplicate:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=name, workflow_execution_retention_period=three_days
            ),
            timeout=RPC_TIMEOUT,
        )
    assert duplicate.value.status == RPCStatusCode.ALREADY_EXISTS

    updated = await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=name,
            update_info=UpdateNamespaceInfo(description="updated by the integration tests"),
            config=NamespaceConfig(workflow_execution_retention_ttl=seven_days),
        ),
        timeout=RPC_TIMEOUT,
    )
    assert updated.namespace_info.description == "updated by the integration tests"
    assert updated.config.workflow_execution_retention_ttl == seven_days

    redescribed = await describe_namespace(client, name)
    assert redescribed.namespace_info.id == described.namespace_info.id
    assert redescribed.namespace_info.description == "updated by the integration tests"
    assert redescribed.config.workflow_execution_retention_ttl == seven_days


async def test_default_namespace_is_registered(client: Client):
    described = await describe_namespace(client, "default")
    uuid.UUID(described.namespace_info.id)
    assert described.namespace_info.state == NamespaceState.NAMESPACE_STATE_REGISTERED
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() > timedelta(0)


async def test_describe_unknown_namespace(client: Client):
    with pytest.raises(RPCError) as missing:
        await describe_namespace(client, f"no-such-namespace-{uuid.uuid4().hex[:8]}")
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_workflows_in_another_namespace_are_isolated(server: AlmanacServer, client: Client,
                                                           task_queue: str):
    """A registered namespace serves workflows; the same workflow id in two namespaces names
    two different workflows."""
    name = f"ns-{uuid.uuid4().hex[:10]}"
    await client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace=name, workflow_execution_retention_period=Duration(seconds=86400)))
    other = await Client.connect(server.address, namespace=name)
    workflow_id = f"shared-id-{uuid.uuid4().hex[:8]}"
    async with new_worker(other, task_queue), new_worker(client, task_queue):
        in_other = await other.execute_workflow(EchoWorkflow.run, "from the other namespace",
                                                id=workflow_id, task_queue=task_queue)
        in_default = await client.execute_workflow(EchoWorkflow.run, "from default",
                                                   id=workflow_id, task_queue=task_queue)
    assert in_other == "from the other namespace"
    assert in_default == "from default"
    other_desc = await other.get_workflow_handle(workflow_id).describe()
    default_desc = await client.get_workflow_handle(workflow_id).describe()
    assert other_desc.run_id != default_desc.run_id
