"""The workflow that bench/message_costs.py sends signals, queries and updates to.

It lives in its own small module (not in message_costs.py) so that the SDK's workflow
sandbox, which re-imports a workflow's module for every run, can import it by a plain module
name without pulling in the driver. (Not `message_workflows`: the integration tests have a
module of that name, and their folder comes first on the path the benchmarks import from.)
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn
class CounterWorkflow:
    """Counts what it receives: each `bump` signal and each accepted `add` update adds one.
    `count` (a query) reads the count, `add` returns it, and `finish` (a signal) makes the
    run return it. The validator of `add` rejects any amount other than 1, so a rejected
    update changes nothing."""

    def __init__(self) -> None:
        self.count = 0
        self.finished = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.finished)
        return self.count

    @workflow.signal
    def bump(self) -> None:
        self.count += 1

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def value(self) -> int:
        return self.count

    @workflow.update
    def add(self, amount: int) -> int:
        self.count += amount
        return self.count

    @add.validator
    def check_add(self, amount: int) -> None:
        if amount != 1:
            raise ValueError(f"only 1 may be added, not {amount}")
