"""The dashboard end to end: Debian's chromium, driven by Playwright, against a real server
and worker on private NATS and Redis. One browser, one admin session and one read session,
each scenario a step; every request the pages make is recorded and must stay on 127.0.0.1.

Screenshots of each page go to `DASHBOARD_SCREENSHOTS` (a directory) when it is set; `docs/`
holds the ones the README shows. Without `/usr/bin/chromium` these tests fail (`make chromium`
installs it): a run that cannot look at the dashboard must not pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.tasks.broker import broker as app_broker
from src.tasks.broker import chain
from tests.api.conftest import bearer
from tests.conftest import ADMIN_KEY, READ_KEY, StartWorker
from tests.support import breakers, tasks
from tests.support.processes import eventually

CHROMIUM = "/usr/bin/chromium"
TYPED = "tests.support.tasks:typed"


def chromium(path: str = CHROMIUM) -> str:
    """The browser to drive; without it the test fails and says how to get it."""
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} is missing: run `make chromium` (Debian's chromium package; as root it "
            "installs it, otherwise it prints the apt-get line to run)",
            pytrace=False,
        )
    return path


def test_without_chromium_the_browser_tests_fail_and_say_how_to_get_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="make chromium"):
        chromium("/nonexistent/chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses root otherwise
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser
        finally:
            await browser.close()


async def _session(
    browser: Browser, base: str, key: str, seen: list[str], **options: Any
) -> tuple[BrowserContext, Page]:
    """A browser context signed in with `key`; every request URL is recorded, and any not
    to the server is refused."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, **options)

    async def record(route: Route) -> None:
        seen.append(route.request.url)
        if route.request.url.startswith(base + "/"):
            await route.continue_()
        else:
            await route.abort()

    await context.route("**/*", record)
    page = await context.new_page()
    await page.goto(f"{base}/dashboard")
    await expect(page).to_have_url(f"{base}/dashboard/login")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return context, page


async def _shot(page: Page, name: str) -> None:
    folder = os.environ.get("DASHBOARD_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"), full_page=True)


async def _submit(api: httpx.AsyncClient, task: str, **body: Any) -> str:
    response = await api.post("/api/v1/tasks", json={"task": f"tests.support.tasks:{task}", **body})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def _hourly_tick(api: httpx.AsyncClient, schedule_id: str, key: str) -> None:
    """An API schedule of `tick(key)` every hour."""
    created = await api.post(
        "/api/v1/schedules",
        json={
            "id": schedule_id,
            "task": "tests.support.tasks:tick",
            "interval": 3600,
            "kwargs": {"key": key},
        },
    )
    assert created.status_code == 201, created.text


async def _state(api: httpx.AsyncClient, task_id: str) -> str:
    state: str = (await api.get(f"/api/v1/tasks/{task_id}")).json()["state"]
    return state


async def test_an_operator_watches_and_steers_everything_from_the_browser(
    settings: Settings, server: str, start_worker: StartWorker, browser: Browser
) -> None:
    await start_worker("tests.support.tasks")
    broker: JetStreamBroker = app_broker
    redis = broker.results.redis
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=server, headers=bearer(ADMIN_KEY)) as api:
        context, page = await _session(browser, server, ADMIN_KEY, seen)

        # A task submitted over the API appears, and reaches SUCCESS, without a reload.
        await page.get_by_role("link", name="Tasks", exact=True).click()
        await expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
        task_id = await _submit(api, "typed", kwargs={"name": "web", "count": 2})
        row = page.get_by_role("row").filter(has_text=task_id[:12])
        await expect(row).to_contain_text("SUCCESS", timeout=20_000)

        # Found by an id prefix (a list), or by its whole id (its page).
        await page.get_by_label("Task id or prefix").fill(task_id[:10])
        await page.get_by_label("State").select_option("SUCCESS")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("#tasks tr")).to_have_count(1)
        await expect(page.locator("#tasks")).to_contain_text(task_id[:12])
        await page.get_by_label("Task id or prefix").fill(task_id)
        await page.get_by_role("button", name="Filter").click()
        await expect(page).to_have_url(f"{server}/dashboard/tasks/{task_id}")
        await expect(page.locator("#outcome")).to_contain_text('"count": 2')

        # Submit a task from the form: the arguments' schema from the registry is shown, the
        # API's 422 comes back word for word, and a good submission opens the new task's page.
        await page.get_by_role("link", name="Tasks", exact=True).click()
        await page.get_by_role("link", name="Submit a task").click()
        form = page.locator("#submit-task")
        await form.get_by_label("Task").select_option(TYPED)
        schema = page.locator("#schema-rows")
        await expect(schema.get_by_role("row").filter(has_text="count")).to_contain_text("integer")
        await expect(schema.get_by_role("row").filter(has_text="name")).to_contain_text("yes")
        await expect(form.get_by_label("Keyword arguments (JSON object)")).to_have_value(
            '{\n  "name": ""\n}'
        )
        kwargs = form.get_by_label("Keyword arguments (JSON object)")
        await kwargs.fill('{"name": "form", "count": "many"}')
        await form.get_by_label("Priority (0-9)").fill("7")
        await form.get_by_label("Queue").fill("default")
        await _shot(page, "submit")
        await form.get_by_role("button", name="Submit").click()
        notice = page.locator("#notice")
        await expect(notice).to_contain_text(f"invalid arguments for {TYPED} (kwargs.count:")
        await kwargs.fill("{not json")
        await form.get_by_role("button", name="Submit").click()
        await expect(notice).to_contain_text("Keyword arguments: not valid JSON")
        await kwargs.fill('["form"]')
        await form.get_by_role("button", name="Submit").click()
        await expect(notice).to_contain_text("Keyword arguments: must be a JSON object")
        await kwargs.fill('{"name": "form", "count": 3}')
        await form.get_by_role("button", name="Submit").click()
        await expect(page).to_have_url(re.compile(rf"{server}/dashboard/tasks/[0-9a-f]{{32}}$"))
        await expect(page.locator("#outcome")).to_contain_text('"count": 3', timeout=20_000)
        submitted = (await api.get(f"/api/v1/tasks/{page.url.rsplit('/', 1)[1]}")).json()
        assert (submitted["task_name"], submitted["queue"]) == (TYPED, "default")
        assert submitted["labels"]["priority"] == 7
        # A delayed one waits, due when asked. Typed at once, before the form has loaded the
        # registry: what was typed stays, and Submit waits until the form can send it.
        await page.goto(f"{server}/dashboard/submit?task={TYPED}")
        await form.get_by_label("Keyword arguments (JSON object)").fill('{"name": "later"}')
        await form.get_by_label("Delay (seconds)").fill("3600")
        await form.get_by_role("button", name="Submit").click()
        await expect(page.locator("#details")).to_contain_text("Due")
        later = (await api.get(f"/api/v1/tasks/{page.url.rsplit('/', 1)[1]}")).json()
        assert later["state"] == "PENDING"
        assert later["kwargs"]["name"] == "later", "what was typed was sent"
        assert later["due_at"] > time.time() + 3000
        assert (await api.post(f"/api/v1/tasks/{later['task_id']}/cancel")).status_code == 200

        # A task's progress bar moves while it runs.
        key = uuid.uuid4().hex
        gated = await _submit(api, "gated", kwargs={"key": key})
        await page.goto(f"{server}/dashboard/tasks/{gated}")
        bar = page.locator("#progress")
        await expect(bar).to_have_attribute("value", "0", timeout=20_000)
        await expect(page.locator("#progress-text")).to_contain_text("waiting")
        await page.get_by_role("link", name="Workers").click()  # it shows what runs where
        await expect(page.locator("#running")).to_contain_text(gated[:12])
        await page.get_by_role("link", name=gated[:12]).click()
        await expect(bar).to_have_attribute("value", "0", timeout=20_000)
        await redis.set(f"test-gate:{key}", 1)
        await expect(bar).to_have_attribute("value", "1", timeout=20_000)
        await expect(page.locator("#task-state")).to_have_text("SUCCESS", timeout=20_000)
        await expect(page.locator("#timeline")).to_contain_text("completed")
        await _shot(page, "task")

        # Cancel a running task from its page: it ends CANCELLED, on its worker.
        key = uuid.uuid4().hex
        hung = await _submit(api, "hang", kwargs={"key": key})
        await eventually(lambda: redis.exists(f"test-count:{key}"), what="hang started")
        await page.goto(f"{server}/dashboard/tasks/{hung}")
        await expect(page.locator("#task-state")).to_have_text("STARTED", timeout=20_000)
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#task-state")).to_have_text("CANCELLED", timeout=20_000)
        await eventually(lambda: redis.exists(f"test-cancelled:{key}"), what="cancelled there")

        # The files a task stored are listed on its page and download through the session.
        made = await tasks.small_artifacts.kiq()
        await made.wait_result(timeout=30)
        await page.goto(f"{server}/dashboard/tasks/{made.task_id}")
        files = page.locator("#artifacts")
        report = files.get_by_role("row").filter(has_text="report.csv")
        await expect(report).to_contain_text("8 B", timeout=20_000)
        await expect(report).to_contain_text("text/csv")
        await expect(files.get_by_role("row").filter(has_text="empty.txt")).to_contain_text("0 B")
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="Download report.csv").click()
        download = await downloading.value
        assert download.suggested_filename == "report.csv"
        assert Path(await download.path()).read_bytes() == b"a,b\n1,2\n"

        # Retry a dead task from its page (it runs again), then delete it after confirming.
        key = uuid.uuid4().hex
        doomed = await _submit(api, "fails_first", kwargs={"key": key})
        await eventually(lambda: _is(api, doomed, "DEAD"), what="dead", timeout_s=20)
        await page.goto(f"{server}/dashboard/tasks/{doomed}")
        await expect(page.locator("#task-state")).to_have_text("DEAD")
        await page.get_by_role("button", name="Retry").click()
        await expect(page.locator("#task-state")).to_have_text("SUCCESS", timeout=20_000)
        assert int(await redis.get(f"test-count:{key}")) == 2
        await page.get_by_role("button", name="Delete").click()
        await page.get_by_role("button", name="Cancel").last.click()  # the dialog's: kept
        assert (await api.get(f"/api/v1/tasks/{doomed}")).status_code == 200
        await page.get_by_role("button", name="Delete").click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(page).to_have_url(f"{server}/dashboard/tasks")
        assert (await api.get(f"/api/v1/tasks/{doomed}")).status_code == 404

        # A failing task lands in Dead letters; requeued from there, it runs again.
        key = uuid.uuid4().hex
        failing = await _submit(api, "fails_first", kwargs={"key": key})
        await page.get_by_role("link", name="Dead letters").click()
        dead_row = page.get_by_role("row").filter(has_text=failing[:12])
        await expect(dead_row).to_contain_text("RuntimeError", timeout=20_000)
        await _shot(page, "dead-letters")
        await dead_row.get_by_role("button", name="Requeue").click()
        await eventually(
            lambda: _is(api, failing, "SUCCESS"), what="requeued task succeeded", timeout_s=20
        )
        assert int(await redis.get(f"test-count:{key}")) == 2

        # Workers: the live worker is listed.
        await page.get_by_role("link", name="Workers").click()
        await expect(page.locator("#workers tr")).to_have_count(1, timeout=10_000)
        await _shot(page, "workers")

        # Pause and resume a schedule.
        await _hourly_tick(api, "web-tick", key)
        await page.get_by_role("link", name="Schedules").click()
        await page.get_by_role("button", name="Pause web-tick").click()
        await expect(page.get_by_role("button", name="Resume web-tick")).to_be_visible()
        assert (await api.get("/api/v1/schedules/web-tick")).json()["paused"] is True
        await page.get_by_role("button", name="Resume web-tick").click()
        await expect(page.get_by_role("button", name="Pause web-tick")).to_be_visible()
        assert (await api.get("/api/v1/schedules/web-tick")).json()["paused"] is False
        # Create one from the form (checked as the API does), run it now.
        form = page.locator("#new-schedule")
        await form.get_by_label("Id (optional)").fill("web-made")
        await form.get_by_label("Task").fill("tests.support.tasks:tick")
        await form.get_by_label("Cron").fill("61 * * * *")
        await form.get_by_label("Keyword arguments (JSON object)").fill(f'{{"key": "{key}"}}')
        await form.get_by_role("button", name="Create").click()
        await expect(page.locator("#notice")).to_contain_text("invalid schedule")
        await form.get_by_label("Cron").fill("0 9 * * *")
        await form.get_by_label("Time zone").fill("Europe/Berlin")
        await form.get_by_role("button", name="Create").click()
        made = page.get_by_role("row").filter(has_text="web-made")
        await expect(made).to_contain_text("cron 0 9 * * * (Europe/Berlin)")
        await page.get_by_role("button", name="Run web-made now").click()
        await expect(made.get_by_role("link")).to_be_visible(timeout=20_000)
        # Change it: checked as the API checks (422 shown), arguments kept when left alone.
        await page.get_by_role("button", name="Edit web-made").click()
        edit = page.locator("#edit-schedule")
        await expect(edit.get_by_label("Cron")).to_have_value("0 9 * * *")
        await expect(edit.get_by_label("Time zone")).to_have_value("Europe/Berlin")
        await edit.get_by_label("Cron").fill("0 25 * * *")
        await edit.get_by_role("button", name="Save").click()
        await expect(page.locator("#notice")).to_contain_text("Change web-made: invalid schedule")
        await edit.get_by_label("or every (seconds)").fill("90")
        await edit.get_by_role("button", name="Save").click()
        await expect(page.locator("#notice")).to_contain_text("not both")
        await edit.get_by_label("Cron").fill("")
        await edit.get_by_role("button", name="Save").click()
        await expect(made).to_contain_text("every 90 s")
        await expect(edit).to_be_hidden()
        changed = (await api.get("/api/v1/schedules/web-made")).json()
        assert (changed["cron"], changed["interval"]) == (None, 90)
        assert changed["kwargs"] == {"key": key}
        await page.get_by_role("button", name="Edit web-made").click()
        await edit.get_by_label("Keyword arguments (JSON object)").fill(json.dumps({"key": "k2"}))
        await _shot(page, "schedules")
        await edit.get_by_role("button", name="Save").click()
        await expect(edit).to_be_hidden()
        assert (await api.get("/api/v1/schedules/web-made")).json()["kwargs"] == {"key": "k2"}

        # A worker lost in the middle of a task: "Requeue orphaned" hands the task back now.
        key = uuid.uuid4().hex
        victim = await start_worker(env_overrides={"TASKJET_QUEUES": "email"}, wait=False)
        lost = await _submit(api, "hang", kwargs={"key": key}, options={"queue": "email"})
        await eventually(lambda: redis.exists(f"test-count:{key}"), what="hang started")
        victim.kill()
        await eventually(lambda: _no_worker_on(api, "email"), what="lost worker forgotten")
        await page.get_by_role("link", name="Tasks", exact=True).click()
        await page.get_by_role("button", name="Requeue orphaned…").click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.locator("#notice")).to_contain_text("1 handed back, 0 dispatched again")
        assert await _state(api, lost) == "PENDING"

        # Pause a queue, then purge it (each after a confirmation step).
        queued = await _submit(api, "typed", kwargs={"name": "q"}, options={"queue": "email"})
        await page.get_by_role("link", name="Queues").click()
        email = page.get_by_role("row").filter(has_text="email")
        await expect(email).to_contain_text("no worker")
        await email.get_by_role("button", name="Pause email").click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(email).to_contain_text("paused")
        await _shot(page, "queues")
        await email.get_by_role("button", name="Purge email").click()
        await page.get_by_role("button", name="Confirm").click()
        await eventually(lambda: _is(api, queued, "CANCELLED"), what="purged task cancelled")

        # A state-changing request without the CSRF token is refused, even with the session.
        refused = await context.request.post(f"{server}/api/v1/queues/email/resume")
        assert refused.status == 403
        assert (await api.get("/api/v1/queues/status")).json()["named_queues"]["email"]["paused"]

        # A read key sees no action controls, and its session's forged actions get 403.
        reader, read_page = await _session(browser, server, READ_KEY, seen)
        loaded = "main tbody tr, #details dd"
        for path in ("tasks", f"tasks/{hung}", "queues", "schedules", "dead-letters"):
            await read_page.goto(f"{server}/dashboard/{path}")
            await expect(read_page.locator(loaded).first).to_be_visible()
            assert await read_page.evaluate(_UNLABELLED) == [], path
            actions = read_page.locator(
                "main button:not(.filters button), main details summary ~ button"
            )
            assert await actions.count() == 0, path
        await read_page.goto(f"{server}/dashboard/submit")
        await expect(read_page.locator("main")).to_contain_text("Your key may only read")
        assert await read_page.locator("#submit-task").count() == 0
        await read_page.goto(f"{server}/dashboard/tasks")
        assert await read_page.get_by_role("link", name="Submit a task").count() == 0
        csrf = await read_page.locator('meta[name="csrf-token"]').get_attribute("content")
        forged = await reader.request.post(
            f"{server}/api/v1/queues/email/resume", headers={"X-CSRF-Token": csrf or ""}
        )
        assert forged.status == 403
        assert "admin" in (await forged.json())["error"]["message"]

        # The overview, with all of the above in it; and at phone width nothing spills over.
        await _submit(api, "fails_first", kwargs={"key": uuid.uuid4().hex})
        await page.get_by_role("link", name="Overview").click()
        await expect(page.locator("#t-dlq")).to_have_text("1", timeout=20_000)
        await expect(page.locator("#failures tr").first).to_contain_text("first run fails")
        # The tasks finished above are in the chart, from the server's `/api/v1/stats`.
        since = int(time.time()) - 3600
        stats = (await api.get(f"/api/v1/stats?since={since}&step=60")).json()
        assert sum(bucket["succeeded"] for bucket in stats["buckets"]) > 0
        await expect(page.locator("#chart polyline.ok")).to_have_count(1)
        heights = (
            "[...new Set(document.querySelector('#chart polyline.ok')"
            ".getAttribute('points').split(' ').map((p) => p.split(',')[1]))].length"
        )
        assert await page.evaluate(heights) > 1  # a line that rises somewhere, not flat at 0
        await _shot(page, "overview")
        # The chart draws what `/api/v1/stats` answers, whatever it is.
        await page.route("**/api/v1/stats?*", _stats)
        await page.reload()
        await expect(page.locator("#chart polyline.ok")).to_have_count(1)
        await expect(page.locator("#chart polyline.bad")).to_have_count(1)
        await page.unroute("**/api/v1/stats?*", _stats)
        await page.get_by_role("link", name="Tasks", exact=True).click()
        await expect(page.get_by_role("row").filter(has_text=task_id[:12])).to_be_visible()
        await _shot(page, "tasks")
        # Bulk actions on a selection of tasks; a purge of dead letters, after a confirmation.
        await page.goto(f"{server}/dashboard/tasks?state=CANCELLED")
        await page.get_by_label(f"Select {hung}").check()
        await page.get_by_role("button", name="Delete selected").click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.get_by_role("row").filter(has_text=hung[:12])).to_have_count(0)
        assert (await api.get(f"/api/v1/tasks/{hung}")).status_code == 404
        await page.goto(f"{server}/dashboard/dead-letters")
        await expect(page.locator("#dlq-total")).to_have_text("(1)")
        await page.get_by_role("button", name="Purge…").click()
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#dlq-total")).to_have_text("(1)")
        await page.get_by_role("button", name="Purge…").click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.locator("#dlq-total")).to_have_text("(0)")

        for path in ("tasks", "queues", "schedules", "dead-letters", "submit"):
            await page.goto(f"{server}/dashboard/{path}")
            await expect(page.locator("main tbody tr").first).to_be_visible()
            assert await page.evaluate(_UNLABELLED) == [], path
        await page.set_viewport_size({"width": 390, "height": 844})
        for path in ("", "/tasks", "/queues", "/submit"):
            await page.goto(f"{server}/dashboard{path}")
            await expect(page.get_by_role("navigation", name="Sections")).to_be_visible()
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        await _shot(page, "phone")

        # Sign out: the session is gone.
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{server}/dashboard/login")
        await reader.close()
        await context.close()

    assert seen
    assert [url for url in seen if not url.startswith(server + "/")] == []


async def test_the_submit_form_never_writes_over_a_field_someone_is_in(
    server: str, browser: Browser
) -> None:
    """The form puts the chosen task's template into the keyword arguments once the registry
    has loaded, but not while someone is in that field (text typed over the page's own value
    would land after the template): the registry's answer is held until the field has focus."""
    seen: list[str] = []
    context, page = await _session(browser, server, ADMIN_KEY, seen)
    focused = asyncio.Event()

    async def after_focus(route: Route) -> None:
        await focused.wait()
        await route.continue_()

    await page.route("**/api/v1/registry", after_focus)
    await page.goto(f"{server}/dashboard/submit?task={TYPED}")
    form = page.locator("#submit-task")
    kwargs = form.get_by_label("Keyword arguments (JSON object)")
    await kwargs.focus()
    focused.set()
    await expect(form.get_by_role("button", name="Submit")).to_be_enabled()
    await expect(form.get_by_label("Task")).to_have_value(TYPED)
    await expect(kwargs).to_have_value("{}")  # the page's own, left as it was
    await kwargs.fill('{"name": "typed"}')
    await expect(kwargs).to_have_value('{"name": "typed"}')
    await context.close()


async def test_an_open_circuit_breaker_shows_and_an_admin_resets_it(
    server: str, start_worker: StartWorker, browser: Browser
) -> None:
    await start_worker("tests.support.breakers")
    failed = await (await breakers.decorated_call.kiq(True)).wait_result(timeout=60)
    assert isinstance(failed.error, ConnectionError)
    seen: list[str] = []
    reader, read_page = await _session(browser, server, READ_KEY, seen)
    await read_page.goto(f"{server}/dashboard/workers")
    row = read_page.locator("#breakers tr").filter(has_text="decorated")
    await expect(row).to_contain_text("open", timeout=10_000)
    assert await read_page.locator("#breakers button").count() == 0
    await reader.close()

    context, page = await _session(browser, server, ADMIN_KEY, seen)
    await page.get_by_role("link", name="Workers").click()
    row = page.locator("#breakers tr").filter(has_text="decorated")
    await expect(row.locator(".state")).to_have_text("open", timeout=10_000)
    await expect(row).to_contain_text("1")  # its threshold
    assert await page.evaluate(_UNLABELLED) == []
    await row.get_by_role("button", name="Reset decorated").click()
    await expect(row.locator(".state")).to_have_text("closed")
    await expect(page.locator("#notice")).to_contain_text("Reset decorated: done.")
    await expect(row.get_by_role("button", name="Reset decorated")).to_be_disabled()
    done = await (await breakers.decorated_call.kiq(False)).wait_result(timeout=60)
    assert done.return_value == "answered"
    await context.close()


async def test_workflows_are_listed_and_each_shows_its_steps(
    server: str, start_worker: StartWorker, browser: Browser, tmp_path: Path
) -> None:
    await start_worker("tests.support.tasks")
    failed = await chain(tasks.add.s(1, 1), tasks.explode.s("web")).kiq()
    await failed.wait_result(timeout=60)
    started, gate = tmp_path / "started", tmp_path / "gate"
    running = await (tasks.gated_value.si(1, str(started), str(gate)) | tasks.add.s(1)).kiq()
    await eventually(started.exists, what="first step running")
    seen: list[str] = []
    context, page = await _session(browser, server, ADMIN_KEY, seen)

    await page.get_by_role("link", name="Workflows").click()
    await expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    rows = page.locator("#workflow-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text(running.workflow_id[:12])
    await expect(rows.nth(0)).to_contain_text("RUNNING")
    await expect(rows.nth(1)).to_contain_text("FAILURE")
    await expect(rows.nth(1)).to_contain_text("2-explode")
    await page.get_by_label("State").select_option("FAILURE")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    assert await page.evaluate(_UNLABELLED) == []
    await _shot(page, "workflows")

    await page.get_by_role("link", name=failed.workflow_id[:12]).click()
    await expect(page).to_have_url(f"{server}/dashboard/workflows/{failed.workflow_id}")
    await expect(page.locator("#workflow-state")).to_have_text("FAILURE")
    steps = page.locator("#step-rows tr")
    await expect(steps).to_have_count(2)
    await expect(steps.nth(1)).to_contain_text("ValueError: web")
    await expect(page.get_by_role("button", name="Cancel workflow")).to_be_disabled()
    record = await failed.record()
    explode_id = record.steps[1].task_id
    assert explode_id is not None
    await steps.nth(1).get_by_role("link", name=explode_id[:12]).click()
    await expect(page).to_have_url(f"{server}/dashboard/tasks/{explode_id}")
    await expect(page.locator("#task-state")).to_have_text("DEAD")

    await page.goto(f"{server}/dashboard/workflows/{running.workflow_id}")
    await expect(page.locator("#workflow-state")).to_have_text("RUNNING")
    await page.get_by_role("button", name="Cancel workflow").click()
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.locator("#workflow-state")).to_have_text("CANCELLED")
    await expect(page.locator("#step-rows tr").nth(1)).to_contain_text("CANCELLED")
    await context.close()


# Every control has a name a screen reader reads (a label, aria-label, or its text).
_UNLABELLED = """() => [...document.querySelectorAll("input:not([type=hidden]), select, button")]
  .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute("aria-label")
                 && !c.textContent.trim())
  .map((c) => c.outerHTML)"""


async def _stats(route: Route) -> None:
    """An answer in the shape `GET /api/v1/stats` gives."""
    now = int(time.time()) // 60 * 60
    buckets = [
        {
            "start": now - 60 * n,
            "succeeded": n % 7,
            "failed": n % 3,
            "retried": 0,
            "dead": 0,
            "cancelled": 0,
            "run_count": 0,
            "run_seconds_sum": 0.0,
            "wait_count": 0,
            "wait_seconds_sum": 0.0,
        }
        for n in range(60, 0, -1)
    ]
    body = {
        "step": 60,
        "since": now - 3600,
        "until": now,
        "task": None,
        "queue": None,
        "buckets": buckets,
        "totals": {},
        "run_histogram": {},
        "wait_histogram": {},
    }
    await route.fulfill(json=body)


async def _is(api: httpx.AsyncClient, task_id: str, state: str) -> bool:
    return await _state(api, task_id) == state


async def _no_worker_on(api: httpx.AsyncClient, queue: str) -> bool:
    workers = (await api.get("/api/v1/queues/status")).json()["workers"]
    return all(queue not in worker["queues"] for worker in workers)


async def test_selected_tasks_dead_letters_queues_and_schedules_are_steered(
    server: str, start_worker: StartWorker, browser: Browser
) -> None:
    """The actions the operator's tour above does not take: bulk cancel, retry and delete of
    selected tasks, requeueing selected dead letters, resuming a paused queue and deleting a
    schedule, each checked through the API afterwards."""
    await start_worker("tests.support.tasks")
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=server, headers=bearer(ADMIN_KEY)) as api:
        context, page = await _session(browser, server, ADMIN_KEY, seen)

        # Three delayed tasks, selected on the tasks page: cancelled together while they wait,
        # retried together (dispatched anew, they run now), then deleted together.
        delayed = [
            await _submit(api, "typed", kwargs={"name": f"b{n}"}, options={"delay": 3600})
            for n in range(3)
        ]
        await page.get_by_role("link", name="Tasks", exact=True).click()

        async def select_all_three() -> None:
            for task_id in delayed:
                box = page.get_by_role("checkbox", name=f"Select {task_id}")
                await expect(box).to_be_visible(timeout=10_000)
                await box.check()
            await expect(page.locator("#selected-count")).to_have_text("3 selected")

        async def bulk(action: str) -> None:
            await page.get_by_role("button", name=f"{action} selected").click()
            await page.get_by_role("button", name="Confirm").click()

        async def all_are(state: str) -> bool:
            return all([await _state(api, task_id) == state for task_id in delayed])

        await select_all_three()
        await bulk("Cancel")
        await eventually(lambda: all_are("CANCELLED"), what="selected tasks cancelled")
        await page.reload()
        await select_all_three()
        await bulk("Retry")
        await eventually(lambda: all_are("SUCCESS"), what="selected tasks run again")
        records = [(await api.get(f"/api/v1/tasks/{task_id}")).json() for task_id in delayed]
        assert [r["dispatch"] for r in records] == [2, 2, 2]
        await page.reload()
        await select_all_three()
        await bulk("Delete")

        async def all_gone() -> bool:
            return all([(await api.get(f"/api/v1/tasks/{t}")).status_code == 404 for t in delayed])

        await eventually(all_gone, what="selected tasks deleted")

        # Two dead letters selected and requeued together: both run again and succeed.
        keys = [uuid.uuid4().hex for _ in range(2)]
        failing = [await _submit(api, "fails_first", kwargs={"key": key}) for key in keys]
        await page.get_by_role("link", name="Dead letters").click()
        for task_id in failing:
            row = page.get_by_role("row").filter(has_text=task_id[:12])
            await expect(row).to_contain_text("RuntimeError", timeout=20_000)
            await row.get_by_role("checkbox", name=f"Select {task_id}").check()
        await page.get_by_role("button", name="Requeue selected").click()
        for task_id in failing:
            await eventually(
                lambda t=task_id: _is(api, t, "SUCCESS"), what="requeued task succeeded"
            )

        # A paused queue resumed from the queues page (a task waits in it: no worker takes it).
        await _submit(api, "typed", kwargs={"name": "r"}, options={"queue": "email"})
        paused = await api.post("/api/v1/queues/email/pause")
        assert paused.status_code == 200, paused.text
        await page.get_by_role("link", name="Queues").click()
        email = page.get_by_role("row").filter(has_text="email")
        await expect(email).to_contain_text("paused", timeout=10_000)
        await email.get_by_role("button", name="Resume email").click()
        await expect(email.get_by_role("button", name="Pause email")).to_be_visible()
        status = (await api.get("/api/v1/queues/status")).json()
        assert status["named_queues"]["email"]["paused"] is False

        # A schedule deleted from the schedules page, after the confirmation step.
        await _hourly_tick(api, "web-gone", uuid.uuid4().hex)
        await page.get_by_role("link", name="Schedules").click()
        await page.get_by_role("button", name="Delete web-gone").click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.get_by_role("button", name="Delete web-gone")).to_have_count(0)
        assert (await api.get("/api/v1/schedules/web-gone")).status_code == 404
        await context.close()

    assert [url for url in seen if not url.startswith(server + "/")] == []
