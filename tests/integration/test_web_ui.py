"""Temporal's own Web UI in front of the server under test, driven by headless Chromium.

Users point the real Temporal UI server (github.com/temporalio/ui-server, which embeds the UI;
scripts/build-web-ui.sh builds it into build/web-ui/) at Almanac unchanged, so these tests do
the same: one UI server per server under test, talking to it through a recording gRPC proxy
(harness.GrpcRecorder), and Debian's Chromium driven by Playwright. Each test checks what the
page shows and what the UI's own HTTP API (/api/v1/..., one gRPC call each) answered it.

They were written against Temporal's dev server (temporal CLI 1.9.1, server 1.32.0):

    build/venv/bin/temporal server start-dev --headless --port 7399 &
    ALMANAC_TEST_ADDRESS=127.0.0.1:7399 build/venv/bin/python -m pytest \
        tests/integration/test_web_ui.py

Environment:
- ALMANAC_UI_SCREENSHOTS=docs/web-ui saves a PNG of each page the docs show (workflows list,
  history, pending activities, schedules, namespaces) into that folder.
- ALMANAC_UI_GRPC_LOG=FILE appends every gRPC call the UI made, one line each:
  test, method, status code, details (tab-separated).
- ALMANAC_UI_SERVER: the UI server binary (default build/web-ui/ui-server);
  ALMANAC_CHROMIUM: the browser (default /usr/bin/chromium).

Without the UI server binary, Chromium or Playwright, the tests are skipped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.worker import Worker

import web_ui_workflows
from harness import GrpcRecorder, WebUIServer, web_ui_binary
from helpers import unique_id, wait_for_event, wait_for_status
from web_ui_workflows import UiActivityWorkflow, UiSignalWorkflow
from workflows import EchoWorkflow, FailingWorkflow

playwright_api = pytest.importorskip("playwright.async_api")
async_playwright = playwright_api.async_playwright
expect = playwright_api.expect

CHROMIUM = Path(os.environ.get("ALMANAC_CHROMIUM", "/usr/bin/chromium"))
# As root in a container with no network: no sandbox, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = os.environ.get("ALMANAC_UI_SCREENSHOTS", "").strip()
GRPC_LOG = os.environ.get("ALMANAC_UI_GRPC_LOG", "").strip()
UI_TIMEOUT_MS = 15_000  # what a page gets to show something
VISIBILITY_S = 20.0  # how long a new run may take to be listed
NAMESPACE = "default"
# What the UI shows when a request failed (toasts, banners and empty-state texts).
ERROR_TEXTS = re.compile(
    r"An error occurred|Error fetching|Unable to fetch|Internal Server Error|"
    r"Something went wrong|not implemented",
    re.IGNORECASE,
)

pytestmark = pytest.mark.deadline(120)


# The UI server and the browser -------------------------------------------------------------


class WebUI:
    """A UI server in front of one server under test, with the gRPC calls it made."""

    def __init__(self, address: str, work_dir: Path) -> None:
        self.recorder = GrpcRecorder(address)
        self.recorder.start()
        self.server = WebUIServer(self.recorder.address, work_dir)
        try:
            self.server.start()
        except BaseException:
            self.recorder.stop()
            raise
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.recorder.stop()


@pytest.fixture(scope="session")
def web_uis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], WebUI]]:
    """One UI server per server under test (by address), for the whole session."""
    if not web_ui_binary().exists():
        pytest.skip(f"no Temporal UI server at {web_ui_binary()}: run scripts/build-web-ui.sh")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-deps.sh")
    started: dict[str, WebUI] = {}

    def for_address(address: str) -> WebUI:
        if address not in started:
            started[address] = WebUI(address, tmp_path_factory.mktemp("web-ui"))
        return started[address]

    try:
        yield for_address
    finally:
        for ui in started.values():
            ui.stop()


@pytest.fixture
def web_ui(server: Any, web_uis: Callable[[str], WebUI], request: pytest.FixtureRequest
           ) -> Iterator[WebUI]:
    """The UI server in front of `server`; logs the test's gRPC calls (ALMANAC_UI_GRPC_LOG)."""
    ui = web_uis(server.address)
    first = len(ui.recorder.snapshot())
    yield ui
    if GRPC_LOG:
        with open(GRPC_LOG, "a") as log:
            for method, code, details in ui.recorder.snapshot()[first:]:
                details = details.replace("\t", " ").replace("\n", " ")
                log.write(f"{request.node.name}\t{method}\t{code}\t{details}\n")


class ApiAnswer:
    """One answer of the UI server's HTTP API to the page."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.method = method
        self.path = path  # with its query string
        self.status = status
        self.body = body  # parsed JSON, or the text when it is not JSON

    def __repr__(self) -> str:
        text = json.dumps(self.body) if not isinstance(self.body, str) else self.body
        return f"{self.method} {self.path} -> {self.status} {text[:300]}"


class Browser:
    """A page of the UI in headless Chromium, with every /api/v1 answer it received."""

    def __init__(self, page: Any, ui: WebUI) -> None:
        self.page = page
        self.ui = ui
        self.answers: list[ApiAnswer] = []
        self.page_errors: list[str] = []  # uncaught exceptions and console errors
        self._pending: set[asyncio.Task] = set()
        page.on("response", self._on_response)
        page.on("pageerror", lambda err: self.page_errors.append(f"uncaught: {err}"))
        page.on("console", lambda message: self.page_errors.append(
            f"console: {message.text}") if message.type == "error" else None)

    def _on_response(self, response: Any) -> None:
        path = response.url.removeprefix(self.ui.url)
        if not path.startswith("/api/v1/"):
            return
        task = asyncio.ensure_future(self._record(response, path))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _record(self, response: Any, path: str) -> None:
        try:
            text = await response.text()
        except Exception as err:  # the page navigated away before the body arrived
            text = f"<no body: {err}>"
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        self.answers.append(ApiAnswer(response.request.method, path, response.status, body))

    async def settle(self) -> None:
        """Waits for the bodies of the answers received so far."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=10)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.ui.url + path)

    async def answer(self, pattern: str, within_s: float = 15,
                     accept: Callable[[ApiAnswer], bool] = lambda a: True) -> ApiAnswer:
        """The latest API answer whose path matches `pattern` (a regex) and `accept`."""
        deadline = time.monotonic() + within_s
        while True:
            await self.settle()
            found = [a for a in self.answers if re.search(pattern, a.path) and accept(a)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                matching = [a for a in self.answers if re.search(pattern, a.path)]
                raise AssertionError(
                    f"the page received no suitable API answer matching {pattern!r} within "
                    f"{within_s:g} s; those matching:\n"
                    + "\n".join(f"  {a!r}" for a in matching) + "\n" + self.trouble())
            await asyncio.sleep(0.1)

    def failed_answers(self) -> list[ApiAnswer]:
        return [a for a in self.answers if a.status >= 400]

    def trouble(self) -> str:
        """What went wrong in the page so far: failed API answers and page errors."""
        lines = [f"  {a!r}" for a in self.failed_answers()]
        lines += [f"  {e[:300]}" for e in self.page_errors]
        return "failed API answers and page errors:\n" + ("\n".join(lines) or "  none")

    async def assert_no_errors(self) -> None:
        """No API answer failed and the page shows no error text."""
        await self.settle()
        text = await self.page.locator("body").inner_text()
        shown = sorted({m.group(0) for m in ERROR_TEXTS.finditer(text)})
        assert not self.failed_answers() and not shown, (
            f"the page shows {shown}; {self.trouble()}")

    async def shows(self, text: str | re.Pattern, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        await self.visible(self.page.get_by_text(text).first, timeout_ms)

    async def visible(self, locator: Any, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        """Waits for `locator` to be visible; when it is not, says what went wrong."""
        try:
            await expect(locator).to_be_visible(timeout=timeout_ms)
        except AssertionError as err:
            await self.settle()
            summary = str(err).split("Aria snapshot:")[0].strip()
            raise AssertionError(f"{summary}\n{self.trouble()}") from None

    async def until(self, check: Callable[[], Awaitable[bool]], within_s: float, what: str
                    ) -> None:
        try:
            await until(check, within_s, what)
        except AssertionError as err:
            await self.settle()
            raise AssertionError(f"{err}\n{self.trouble()}") from None

    async def screenshot(self, name: str) -> None:
        if not SCREENSHOTS:
            return
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        await self.page.wait_for_timeout(500)  # no network idle: the history page long-polls
        await self.page.screenshot(path=str(folder / f"{name}.png"))


@pytest.fixture
async def browser(web_ui: WebUI) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await chromium.new_context(
                viewport={"width": 1440, "height": 900}, timezone_id="UTC", locale="en-US")
            page = await context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            view = Browser(page, web_ui)
            yield view
            await view.settle()
        finally:
            await chromium.close()


def ui_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[EchoWorkflow, FailingWorkflow, *web_ui_workflows.WORKFLOWS],
        activities=web_ui_workflows.ACTIVITIES,
    )


def workflow_path(workflow_id: str, run_id: str, tab: str = "history") -> str:
    quote = urllib.parse.quote
    return f"/namespaces/{NAMESPACE}/workflows/{quote(workflow_id)}/{quote(run_id)}/{tab}"


def list_path(query: str) -> str:
    return f"/namespaces/{NAMESPACE}/workflows?query={urllib.parse.quote(query)}"


def payload_value(payload: dict) -> Any:
    """A payload as the UI's API renders it (base64 JSON data) decoded."""
    return json.loads(base64.b64decode(payload["data"]))


async def until(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s:g} s")
        await asyncio.sleep(0.5)


async def finish(*handles: Any) -> None:
    """Terminates what a test left running."""
    for handle in handles:
        try:
            await handle.terminate(reason="test over")
        except Exception:
            pass


# The tests ----------------------------------------------------------------------------------


async def test_workflows_page_lists_runs_and_status_counts(
    client: Client, task_queue: str, browser: Browser
) -> None:
    async with ui_worker(client, task_queue):
        done = [unique_id("ui-echo"), unique_id("ui-echo")]
        failed = unique_id("ui-fails")
        for workflow_id in done:
            await client.execute_workflow(
                EchoWorkflow.run, "hi", id=workflow_id, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(
                FailingWorkflow.run, "on purpose", id=failed, task_queue=task_queue)
        waiting = await client.start_workflow(
            UiSignalWorkflow.run, 5, id=unique_id("ui-waits"), task_queue=task_queue)
        working = await client.start_workflow(
            UiActivityWorkflow.run, "report", id=unique_id("ui-works"), task_queue=task_queue)
        ids = {*done, failed, waiting.id, working.id}
        try:
            # Only this test's runs: the page's query filters by task queue.
            await browser.goto(list_path(f'TaskQueue="{task_queue}"'))
            rows = browser.page.locator("table tbody tr")

            async def all_listed() -> bool:
                text = " ".join(await rows.all_inner_texts())
                if all(i in text for i in ids):
                    return True
                await browser.page.get_by_role("button", name="Refresh").click()
                return False

            await browser.until(all_listed, VISIBILITY_S, "the workflows page lists the five runs")
            await browser.shows(re.compile(r"^\s*2\s+Running\s*$", re.I))
            await browser.shows(re.compile(r"^\s*2\s+Completed\s*$", re.I))
            await browser.shows(re.compile(r"^\s*1\s+Failed\s*$", re.I))

            listed = await browser.answer(
                r"/workflows\?", accept=lambda a: a.status == 200 and isinstance(a.body, dict)
                and len(a.body.get("executions", [])) == 5)
            by_id = {e["execution"]["workflowId"]: e for e in listed.body["executions"]}
            assert set(by_id) == ids
            assert by_id[failed]["status"] == "WORKFLOW_EXECUTION_STATUS_FAILED"
            assert by_id[working.id]["type"]["name"] == "UiActivityWorkflow"
            assert by_id[working.id]["taskQueue"] == task_queue

            counted = await browser.answer(r"/workflow-count\?query=.*GROUP", accept=lambda a:
                                           a.status == 200 and a.body.get("count") == "5")
            groups = {payload_value(g["groupValues"][0]): int(g["count"])
                      for g in counted.body["groups"]}
            assert groups == {"Running": 2, "Completed": 2, "Failed": 1}
            await browser.assert_no_errors()
            await browser.screenshot("workflows")
        finally:
            await finish(waiting, working)


async def test_workflow_history_follows_new_events(
    client: Client, task_queue: str, browser: Browser
) -> None:
    async with ui_worker(client, task_queue):
        handle = await client.start_workflow(
            UiSignalWorkflow.run, 2, id=unique_id("ui-history"), task_queue=task_queue)
        try:
            await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
            await browser.goto(workflow_path(handle.id, handle.result_run_id))
            await browser.shows("Workflow Execution Started")
            await browser.shows("Workflow Task Completed")
            history = await browser.answer(r"/history\?", accept=lambda a: a.status == 200)
            types = [e["eventType"] for e in history.body["history"]["events"]]
            assert types[:4] == [
                "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
                "EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
            described = await browser.answer(
                rf"/workflows/{re.escape(handle.id)}\?", accept=lambda a: a.status == 200)
            assert described.body["workflowExecutionInfo"]["status"] == (
                "WORKFLOW_EXECUTION_STATUS_RUNNING")
            await browser.assert_no_errors()

            # A signal sent now shows up without a reload (the page long-polls the history):
            # a mark left in the page's window survives.
            await browser.page.evaluate("window.almanacMark = 'still here'")
            await handle.signal("ping", "one")
            await browser.visible(browser.page.get_by_role(
                "row", name=re.compile(r"Workflow Execution Signaled.*ping")))
            assert await browser.page.evaluate("window.almanacMark") == "still here"
            await browser.answer(r"/history\?", accept=lambda a: a.status == 200 and
                                 "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in json.dumps(a.body))
            await browser.screenshot("workflow-history")

            await handle.signal("ping", "two")
            assert await handle.result() == [["ping", "one"], ["ping", "two"]]
            await browser.shows("Workflow Execution Completed")
            await browser.assert_no_errors()
        finally:
            await finish(handle)


async def test_pending_activities_page(
    client: Client, task_queue: str, browser: Browser
) -> None:
    async with ui_worker(client, task_queue):
        handle = await client.start_workflow(
            UiActivityWorkflow.run, "quarterly report", id=unique_id("ui-activity"),
            task_queue=task_queue)
        try:
            async def heartbeating() -> bool:
                pending = (await handle.describe()).raw_description.pending_activities
                return bool(pending) and pending[0].state == (
                    PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                ) and pending[0].HasField("heartbeat_details")

            await until(heartbeating, 15, "the activity runs and heartbeats")
            await browser.goto(workflow_path(handle.id, handle.result_run_id,
                                             "pending-activities"))
            await browser.shows("ui_long_task")
            await browser.shows(re.compile(r"quarterly report"))
            described = await browser.answer(
                rf"/workflows/{re.escape(handle.id)}\?", accept=lambda a: a.status == 200)
            pending = described.body["pendingActivities"]
            assert [p["activityType"]["name"] for p in pending] == ["ui_long_task"]
            assert pending[0]["state"] == "PENDING_ACTIVITY_STATE_STARTED"
            await browser.assert_no_errors()
            await browser.screenshot("pending-activities")
        finally:
            await finish(handle)


async def test_schedules_page(client: Client, task_queue: str, browser: Browser) -> None:
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    if not info.capabilities.supports_schedules:
        # Almanac's schedules are issue 11; until then ListSchedules answers UNIMPLEMENTED
        # and the server does not claim the capability.
        pytest.skip("the server does not support schedules yet")
    # The page loads (ListSchedules, CountSchedules) before there is a schedule to show.
    await browser.goto(f"/namespaces/{NAMESPACE}/schedules")
    await browser.shows("Create Schedule")
    await browser.answer(r"/schedules\?", accept=lambda a: a.status == 200)
    await browser.assert_no_errors()

    schedule_id = unique_id("ui-schedule")
    schedule = await client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                EchoWorkflow.run, "from a schedule", id=f"{schedule_id}-run",
                task_queue=task_queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
            state=ScheduleState(note="listed by the Web UI test"),
        ),
    )
    try:
        await browser.page.reload()
        table = browser.page.locator("table")

        async def listed() -> bool:
            if schedule_id in " ".join(await table.all_inner_texts()):
                return True
            await browser.page.get_by_role("button", name="Refresh").click()
            return False

        await browser.until(listed, VISIBILITY_S, "the schedules page lists the schedule")
        await browser.shows("EchoWorkflow")
        answer = await browser.answer(r"/schedules\?", accept=lambda a: a.status == 200 and
                                      schedule_id in json.dumps(a.body))
        ids = [s["scheduleId"] for s in answer.body["schedules"]]
        assert schedule_id in ids
        await browser.assert_no_errors()
        await browser.screenshot("schedules")

        # The schedule's own page.
        await browser.goto(f"/namespaces/{NAMESPACE}/schedules/{urllib.parse.quote(schedule_id)}")
        await browser.shows(schedule_id)
        described = await browser.answer(
            rf"/schedules/{re.escape(schedule_id)}\?", accept=lambda a: a.status == 200)
        action = described.body["schedule"]["action"]["startWorkflow"]
        assert action["workflowType"]["name"] == "EchoWorkflow"
        await browser.assert_no_errors()
    finally:
        await schedule.delete()


async def test_namespaces_and_search_attributes(browser: Browser) -> None:
    await browser.goto("/namespaces")
    await browser.visible(browser.page.get_by_role("link", name=NAMESPACE, exact=True).first)
    listed = await browser.answer(r"/namespaces\?", accept=lambda a: a.status == 200)
    names = [n["namespaceInfo"]["name"] for n in listed.body["namespaces"]]
    assert NAMESPACE in names
    await browser.assert_no_errors()
    await browser.screenshot("namespaces")

    # The namespace's page: its details and the search attributes it knows.
    await browser.goto(f"/namespaces/{NAMESPACE}")
    await browser.shows("Search Attributes")
    for attribute in ("ExecutionStatus", "WorkflowType", "WorkflowId", "StartTime"):
        await browser.shows(re.compile(rf"^{attribute}$"))
    attributes = await browser.answer(r"/search-attributes", accept=lambda a: a.status == 200)
    system = attributes.body["systemAttributes"]
    assert system["ExecutionStatus"] == "INDEXED_VALUE_TYPE_KEYWORD"
    assert system["StartTime"] == "INDEXED_VALUE_TYPE_DATETIME"
    described = await browser.answer(rf"/namespaces/{NAMESPACE}\?",
                                      accept=lambda a: a.status == 200)
    assert described.body["namespaceInfo"]["name"] == NAMESPACE
    await browser.assert_no_errors()
    await browser.screenshot("namespace-details")

    # The workflows page's filter menu offers them too.
    await browser.goto(f"/namespaces/{NAMESPACE}/workflows")
    await browser.page.get_by_role("button", name="Add Filter").click()
    await browser.shows(re.compile(r"^WorkflowType$"))
    await browser.assert_no_errors()


async def _open_running(browser: Browser, client: Client, task_queue: str, name: str) -> Any:
    handle = await client.start_workflow(
        UiSignalWorkflow.run, 1, id=unique_id(name), task_queue=task_queue)
    await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    await browser.goto(workflow_path(handle.id, handle.result_run_id))
    await browser.shows("Workflow Task Completed")
    return handle


async def test_signal_from_the_ui(client: Client, task_queue: str, browser: Browser) -> None:
    async with ui_worker(client, task_queue):
        handle = await _open_running(browser, client, task_queue, "ui-signal")
        try:
            page = browser.page
            await page.get_by_role("button", name="More Actions").click()
            await page.get_by_role("menuitem", name="Send a Signal").click()
            dialog = page.locator("dialog[open]")
            await dialog.get_by_test_id("signal-select-button").click()
            await dialog.get_by_role("option", name="Custom").click()
            await dialog.get_by_test_id("signal-name").fill("from-ui")
            await dialog.locator(".cm-content").first.click()
            await page.keyboard.insert_text('"hello from the UI"')
            await dialog.get_by_role("button", name="Submit").click()

            assert await asyncio.wait_for(handle.result(), 15) == [
                ["from-ui", "hello from the UI"]]
            await browser.answer(r"/signal", accept=lambda a: a.method == "POST")
            await browser.shows("Workflow Execution Signaled")
            await browser.assert_no_errors()
        finally:
            await finish(handle)


async def test_cancel_from_the_ui(client: Client, task_queue: str, browser: Browser) -> None:
    async with ui_worker(client, task_queue):
        handle = await _open_running(browser, client, task_queue, "ui-cancel")
        try:
            page = browser.page
            await page.get_by_role("button", name="Request Cancellation").click()
            await page.locator("dialog[open]").get_by_test_id("confirm-modal-button").click()

            await wait_for_status(handle, WorkflowExecutionStatus.CANCELED, within_s=15)
            await browser.answer(r"/cancel", accept=lambda a: a.method == "POST")
            await browser.shows("Workflow Execution Canceled")
            await browser.assert_no_errors()
        finally:
            await finish(handle)


async def test_terminate_from_the_ui(client: Client, task_queue: str, browser: Browser) -> None:
    async with ui_worker(client, task_queue):
        handle = await _open_running(browser, client, task_queue, "ui-terminate")
        try:
            page = browser.page
            await page.get_by_role("button", name="More Actions").click()
            await page.get_by_role("menuitem", name="Terminate").click()
            dialog = page.locator("dialog[open]")
            reason = dialog.locator("input[type=text], textarea").first
            if await reason.count():
                await reason.fill("ended from the Web UI")
            await dialog.get_by_test_id("confirm-modal-button").click()

            await wait_for_status(handle, WorkflowExecutionStatus.TERMINATED, within_s=15)
            events = [e async for e in handle.fetch_history_events()]
            terminated = events[-1]
            assert terminated.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
            await browser.answer(r"/terminate", accept=lambda a: a.method == "POST")
            await browser.shows("Workflow Execution Terminated")
            await browser.assert_no_errors()
        finally:
            await finish(handle)


async def test_create_schedule_from_the_ui(client: Client, task_queue: str,
                                           browser: Browser) -> None:
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    if not info.capabilities.supports_schedules:
        pytest.skip("the server does not support schedules yet")
    schedule_id = unique_id("ui-created")
    await browser.goto(f"/namespaces/{NAMESPACE}/schedules/create")
    await browser.shows("Create Schedule")
    page = browser.page
    await page.get_by_test_id("schedule-name-input").fill(schedule_id)
    await page.locator('input[placeholder="* * * * *"]').fill("30 12 * * *")
    await page.get_by_test_id("schedule-type-input").fill("EchoWorkflow")
    await page.get_by_test_id("schedule-workflow-id-input").fill(f"{schedule_id}-run")
    await page.get_by_test_id("schedule-task-queue-input").fill(task_queue)
    await browser.screenshot("schedule-create")
    await page.get_by_test_id("create-schedule-button").click()
    created = await browser.answer(rf"/schedules/{re.escape(schedule_id)}\?",
                                   accept=lambda a: a.method == "POST")
    assert created.status == 200, created
    handle = client.get_schedule_handle(schedule_id)
    try:
        # The UI goes back to the list, which shows the new schedule.
        await browser.until(
            lambda: _lists(page, schedule_id), VISIBILITY_S, "the list shows the new schedule")
        desc = await handle.describe()
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.id, action.task_queue) == (
            "EchoWorkflow", f"{schedule_id}-run", task_queue)
        # The cron string comes back as Temporal's structured calendar: 12:30:00 every day.
        [calendar] = desc.schedule.spec.calendars
        assert [(r.start, r.end) for r in calendar.hour] == [(12, 12)]
        assert [(r.start, r.end) for r in calendar.minute] == [(30, 30)]
        assert [(r.start, r.end) for r in calendar.second] == [(0, 0)]
        assert desc.info.next_action_times[0].astimezone(timezone.utc).strftime("%H:%M:%S") == \
            "12:30:00"
        await browser.assert_no_errors()
    finally:
        await handle.delete()


async def _lists(page: Any, schedule_id: str) -> bool:
    return schedule_id in " ".join(await page.locator("table").all_inner_texts())
