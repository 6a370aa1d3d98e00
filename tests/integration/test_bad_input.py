"""Invalid requests get the right gRPC status, and leave the daemon serving."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    ListBatchOperationsRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from helpers import new_worker, unique_id
from workflows import GreetWorkflow

RPC_TIMEOUT = timedelta(seconds=10)


def start_request(**overrides) -> StartWorkflowExecutionRequest:
    """A valid start request for the default namespace, with `overrides` applied."""
    fields: dict[str, Any] = dict(
        namespace="default",
        workflow_id=unique_id(),
        workflow_type=WorkflowType(name="EchoWorkflow"),
        task_queue=TaskQueue(name=f"tq-{uuid.uuid4()}"),
        identity="almanac-integration-tests",
        request_id=str(uuid.uuid4()),
    )
    fields.update(overrides)
    return StartWorkflowExecutionRequest(**fields)


async def expect_rpc_error(call: Awaitable[object], *codes: RPCStatusCode) -> RPCError:
    with pytest.raises(RPCError) as caught:
        await call
    assert caught.value.status in codes, (
        f"got {caught.value.status.name} ({caught.value.message!r}), "
        f"expected {' or '.join(c.name for c in codes)}"
    )
    return caught.value


# Each bad request, by name, so that the last test can send all of them again.
INVALID_STARTS = {
    "missing_workflow_id": lambda: start_request(workflow_id=""),
    "missing_workflow_type": lambda: start_request(workflow_type=WorkflowType(name="")),
    "missing_task_queue": lambda: start_request(task_queue=TaskQueue(name="")),
    "workflow_id_too_long": lambda: start_request(workflow_id="w" * 2000),
}


async def test_unknown_namespace(client: Client):
    namespace = f"no-such-namespace-{uuid.uuid4().hex[:8]}"
    error = await expect_rpc_error(
        client.workflow_service.start_workflow_execution(
            start_request(namespace=namespace), timeout=RPC_TIMEOUT
        ),
        RPCStatusCode.NOT_FOUND,
    )
    details = [
        d
        for d in error.grpc_status.details
        if d.type_url.endswith(NamespaceNotFoundFailure.DESCRIPTOR.full_name)
    ]
    assert details, [d.type_url for d in error.grpc_status.details]
    failure = NamespaceNotFoundFailure()
    assert details[0].Unpack(failure)
    assert failure.namespace == namespace


@pytest.mark.parametrize("case", list(INVALID_STARTS))
async def test_invalid_start_request(client: Client, case: str):
    error = await expect_rpc_error(
        client.workflow_service.start_workflow_execution(
            INVALID_STARTS[case](), timeout=RPC_TIMEOUT
        ),
        RPCStatusCode.INVALID_ARGUMENT,
    )
    assert error.message.strip()


GARBAGE_TOKEN_CALLS: dict[str, Callable[[Client], Awaitable[object]]] = {
    "workflow_task": lambda client: client.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=b"garbage", identity="almanac-integration-tests"
        ),
        timeout=RPC_TIMEOUT,
    ),
    "activity_task": lambda client: client.workflow_service.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(
            namespace="default", task_token=b"garbage", identity="almanac-integration-tests"
        ),
        timeout=RPC_TIMEOUT,
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE_TOKEN_CALLS))
async def test_garbage_task_token(client: Client, case: str):
    await expect_rpc_error(
        GARBAGE_TOKEN_CALLS[case](client),
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.NOT_FOUND,
    )


UNIMPLEMENTED_CALLS: dict[str, Callable[[Client], Awaitable[object]]] = {
    "list_batch_operations": lambda client: client.workflow_service.list_batch_operations(
        ListBatchOperationsRequest(namespace="default"), timeout=RPC_TIMEOUT
    ),
    "create_nexus_endpoint": lambda client: client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name="almanac-tests",
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(namespace="default", task_queue="nexus")
                ),
            )
        ),
        timeout=RPC_TIMEOUT,
    ),
}


# The method each of those calls, as the UNIMPLEMENTED answer names it (as a Go server does).
UNIMPLEMENTED_METHODS = {"list_batch_operations": "ListBatchOperations",
                         "create_nexus_endpoint": "CreateNexusEndpoint"}


@pytest.mark.parametrize("case", list(UNIMPLEMENTED_CALLS))
async def test_unimplemented_rpc(server, client: Client, case: str):
    err = await expect_rpc_error(UNIMPLEMENTED_CALLS[case](client), RPCStatusCode.UNIMPLEMENTED)
    if server.store != "external":  # Temporal implements these
        assert err.message == f"method {UNIMPLEMENTED_METHODS[case]} not implemented"


async def test_still_serves_after_bad_input(client: Client, task_queue: str):
    for make_request in INVALID_STARTS.values():
        with pytest.raises(RPCError):
            await client.workflow_service.start_workflow_execution(
                make_request(), timeout=RPC_TIMEOUT
            )
    for call in GARBAGE_TOKEN_CALLS.values():
        with pytest.raises(RPCError):
            await call(client)
    for call in UNIMPLEMENTED_CALLS.values():
        with contextlib.suppress(RPCError):
            await call(client)

    async with new_worker(client, task_queue):
        result = await client.execute_workflow(
            GreetWorkflow.run, "survivor", id=unique_id(), task_queue=task_queue
        )
    assert result == "Hello, survivor!"
