"""Dashboard sign-in, sessions and CSRF over ASGI (no browser): every refusal path."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from src.api import sessions
from src.api.app import create_app
from src.api.dashboard import pages
from src.api.dashboard.pages import PageCheck
from src.api.dashboard.signin import SignInGuard
from src.config import Settings, load_settings
from src.tasks.broker import broker as app_broker
from tests.conftest import ADMIN_KEY, READ_KEY, SUBMIT_KEY, TEST_DEFAULTS
from tests.support.processes import eventually


@asynccontextmanager
async def browser_like(
    settings: Settings, base: str = "http://taskjet"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no key, keeping cookies as a browser does."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            yield client


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/dashboard/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    return await client.post("/dashboard/login", data={"login_token": token.group(1), "key": key})


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf-token" content="([^"]*)"', page.text)
    assert found is not None
    return found.group(1)


async def test_a_key_is_exchanged_for_a_strict_httponly_session(settings: Settings) -> None:
    async with browser_like(settings) as client:
        page = await client.get("/dashboard/tasks")
        assert page.status_code == 303
        assert page.headers["location"] == "/dashboard/login"
        answer = await _sign_in(client, ADMIN_KEY)
        assert answer.status_code == 303
        cookie = next(
            v
            for k, v in answer.headers.multi_items()
            if k == "set-cookie" and v.startswith(sessions.COOKIE)
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain http here; https below
        assert ADMIN_KEY not in cookie
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert ADMIN_KEY not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        csrf = _csrf(page)
        assert (await client.get("/api/v1/tasks")).status_code == 200
        body = {"action": "delete", "task_ids": ["0" * 32]}
        refused = await client.post("/api/v1/tasks/bulk", json=body)
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["error"]["message"]
        wrong = await client.post("/api/v1/tasks/bulk", json=body, headers={"X-CSRF-Token": "x"})
        assert wrong.status_code == 403
        done = await client.post("/api/v1/tasks/bulk", json=body, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200
        assert done.json()["failed"][0]["task_id"] == "0" * 32
        # Sign-out needs the token too, then the session is gone.
        assert (await client.post("/dashboard/logout", data={"csrf_token": "x"})).status_code == 403
        out = await client.post("/dashboard/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert (await client.get("/api/v1/tasks")).status_code == 401
        assert (await client.get("/dashboard")).status_code == 303


async def test_sign_in_refusals(settings: Settings) -> None:
    async with browser_like(settings) as client:
        wrong = await _sign_in(client, "not-a-key")
        assert wrong.status_code == 401
        assert "not valid" in wrong.text
        assert sessions.COOKIE not in client.cookies
        # Without the form's own token (another site posting a key of its choosing).
        client.cookies.clear()
        forged = await client.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert forged.status_code == 403
        assert sessions.COOKIE not in client.cookies


async def test_guessing_keys_is_slowed_down(settings: Settings) -> None:
    async with browser_like(settings) as client:
        for _ in range(SignInGuard.MAX_FAILURES):
            assert (await _sign_in(client, "guess")).status_code == 401
        blocked = await _sign_in(client, ADMIN_KEY)  # even the right key, for a while
        assert blocked.status_code == 429
        assert sessions.COOKIE not in client.cookies


def test_the_guard_forgets_old_failures_and_addresses() -> None:
    guard = SignInGuard()
    guard.WINDOW_S = 0.0  # every failure is already outside the window
    for _ in range(SignInGuard.MAX_FAILURES):
        guard.failed("10.0.0.1")
    assert not guard.blocked("10.0.0.1")
    guard.MAX_ADDRESSES = 3
    for n in range(5):
        guard.failed(f"10.0.0.{n}")
    assert len(guard._failures) == 3


async def test_a_session_over_https_is_secure(settings: Settings) -> None:
    async with browser_like(settings, base="https://taskjet") as client:
        answer = await _sign_in(client, READ_KEY)
        cookie = answer.headers["set-cookie"]
        assert "Secure" in cookie


async def test_a_read_session_is_refused_actions(settings: Settings) -> None:
    async with browser_like(settings) as client:
        await _sign_in(client, READ_KEY)
        page = await client.get("/dashboard/queues")
        assert 'data-admin="false"' in page.text
        forged = await client.post("/api/v1/queues/q1/pause", headers={"X-CSRF-Token": _csrf(page)})
        assert forged.status_code == 403
        # A bearer header is judged on its own: a session does not lift a bad key.
        assert (
            await client.get("/api/v1/tasks", headers={"Authorization": "Bearer no"})
        ).status_code == 401


@pytest.mark.parametrize(
    ("key", "form"), [(SUBMIT_KEY, True), (ADMIN_KEY, True), (READ_KEY, False)]
)
async def test_the_submission_form_is_for_keys_that_may_submit(
    settings: Settings, key: str, form: bool
) -> None:
    async with browser_like(settings) as client:
        await _sign_in(client, key)
        page = await client.get("/dashboard/submit")
        assert page.status_code == 200
        assert ('id="submit-task"' in page.text) is form
        assert ('href="/dashboard/submit"' in (await client.get("/dashboard/tasks")).text) is form


async def test_a_session_lists_and_downloads_a_task_s_files(settings: Settings) -> None:
    async with browser_like(settings) as client:
        await app_broker.artifacts.put("t-files", "page.html", b"<script>1</script>", "text/html")
        path = "/api/v1/tasks/t-files/artifacts/page.html"
        assert (await client.get(path)).status_code == 401
        await _sign_in(client, READ_KEY)
        listed = (await client.get("/api/v1/tasks/t-files/artifacts")).json()
        assert [(a["name"], a["size"]) for a in listed] == [("page.html", 18)]
        got = await client.get(path)
        assert (got.status_code, got.content) == (200, b"<script>1</script>")
        # Whatever type a task gave its file, it is a download, never a page of this site.
        assert got.headers["content-disposition"] == 'attachment; filename="page.html"'
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"].startswith("sandbox")


async def test_forged_expired_and_revoked_sessions_are_refused() -> None:
    settings = load_settings(**TEST_DEFAULTS, dashboard_secret="s" * 32)
    value, session = sessions.issue(settings, "admin", sessions.key_id(ADMIN_KEY))
    assert sessions.read(settings, value) == session
    assert sessions.read(settings, value[:-2] + "xx") is None
    assert sessions.read(settings, None) is None
    other_secret = load_settings(**TEST_DEFAULTS, dashboard_secret="t" * 32)
    assert sessions.read(other_secret, value) is None
    revoked = load_settings(
        **{**TEST_DEFAULTS, "api_keys": f"read:{READ_KEY}"}, dashboard_secret="s" * 32
    )
    assert sessions.read(revoked, value) is None
    demoted = load_settings(
        **{**TEST_DEFAULTS, "api_keys": f"read:{ADMIN_KEY}"}, dashboard_secret="s" * 32
    )
    assert sessions.read(demoted, value) is None
    old, _ = sessions.issue(settings, "admin", sessions.key_id(ADMIN_KEY))
    assert sessions.read(settings, old, max_age_s=1) is not None
    await eventually(lambda: sessions.read(settings, old, max_age_s=1) is None, what="expiry")


@pytest.mark.settings(auth="disabled")
async def test_without_auth_the_dashboard_is_open(settings: Settings) -> None:
    async with browser_like(settings) as client:
        assert (await client.get("/dashboard")).status_code == 200
        assert (await client.get("/dashboard/login")).headers["location"] == "/dashboard"


@pytest.mark.settings(dashboard=False)
async def test_the_dashboard_can_be_turned_off(settings: Settings) -> None:
    async with browser_like(settings) as client:
        assert (await client.get("/dashboard")).status_code == 404
        assert (await client.get("/dashboard/login")).status_code == 404
        assert (await client.get("/dashboard/static/dashboard.js")).status_code == 404


def test_every_page_needs_a_session() -> None:
    for route in pages.router.routes:
        dependant = route.dependant  # type: ignore[attr-defined]
        assert any(isinstance(d.call, PageCheck) for d in dependant.dependencies), route
