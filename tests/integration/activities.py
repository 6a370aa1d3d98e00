"""Activities the test workflows call. They run in the test process, outside the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn
async def append(sequence: list[int], item: int) -> list[int]:
    """Returns `sequence` with `item` added: chaining calls proves the order they ran in."""
    return [*sequence, item]


@activity.defn
async def square(n: int) -> int:
    return n * n


@activity.defn
async def charge_card(order_id: str) -> None:
    raise ApplicationError(
        f"card declined for order {order_id}", type="CardDeclined", non_retryable=True
    )


class CallRecorder:
    """An activity that remembers every call it receives, to check that no task arrived."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @activity.defn(name="record_call")
    async def record_call(self, tag: str) -> str:
        self.calls.append(tag)
        return tag


ALL_ACTIVITIES: list[Callable[..., Any]] = [greet, append, square, charge_card]
