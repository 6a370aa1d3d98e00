"""The workflows that bench/child_costs.py runs.

They live in their own small module (not in child_costs.py) so that the SDK's workflow
sandbox, which re-imports a workflow's module for every run, can import them by a plain
module name without pulling in the driver. (Not `child_workflows`: the integration tests
have a module of that name, and their folder comes first on the path the benchmarks import
from.)
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

# The children's workflow task timeout (the driver passes the same to start_workflow for the
# parents and the standalone runs). Every workflow task arms a start-to-close timer that
# fires later as a no-op; the driver waits for it inside each phase's window, so a short
# timeout keeps that wait short. Equal to failure_workflows.WORKFLOW_TASK_TIMEOUT.
TASK_TIMEOUT = timedelta(seconds=5)


def child_result(n: int, k: int) -> str:
    """What ChildCostChild(n, k) returns; the driver checks every parent's list of them."""
    return f"child-{n}.{k}:{n * 31 + k}"


def child_id(parent_id: str, k: int) -> str:
    """The workflow id of a parent's k-th child."""
    return f"{parent_id}-c{k}"


@workflow.defn
class ChildCostChild:
    """Returns a value at once: one workflow task, five history events."""

    @workflow.run
    async def run(self, n: int, k: int) -> str:
        return child_result(n, k)


@workflow.defn
class ChildCostParent:
    """Runs `children` ChildCostChild workflows one after another, waiting for each one's
    result, and returns the results. With `children` 0 it returns at once (the baseline)."""

    @workflow.run
    async def run(self, n: int, children: int) -> list[str]:
        parent_id = workflow.info().workflow_id
        results: list[str] = []
        for k in range(children):
            results.append(await workflow.execute_child_workflow(
                ChildCostChild.run, args=[n, k], id=child_id(parent_id, k),
                task_timeout=TASK_TIMEOUT))
        return results
