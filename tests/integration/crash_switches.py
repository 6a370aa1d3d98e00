"""Mutable switches the crash tests flip while workflow code runs (passed through the SDK's
sandbox, so the workflow sees the live value)."""

FAIL_WORKFLOW_TASKS = False
