"""Mutable switches the crash tests flip while workflow code runs (passed through the SDK's
sandbox, so the workflow sees the live value)."""

FAIL_WORKFLOW_TASKS = False

# Set in the crash worker process only: its local activities block on their first attempt.
BLOCK_LOCAL_ACTIVITIES = False
