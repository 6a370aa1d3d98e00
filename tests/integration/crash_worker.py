"""A worker process for the crash tests: python crash_worker.py ADDRESS TASK_QUEUE.

It serves CrashWorkflows' workflows and activities until it is killed. Its activity blocks
on the first attempt, so that the test can kill -9 the process mid-activity.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio.client import Client
from temporalio.worker import Worker

import crash_switches
import crash_workflows


async def main(address: str, task_queue: str) -> None:
    crash_switches.BLOCK_LOCAL_ACTIVITIES = True
    client = await Client.connect(address)
    worker = Worker(client, task_queue=task_queue, workflows=crash_workflows.WORKFLOWS,
                    activities=crash_workflows.ACTIVITIES)
    print("worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
