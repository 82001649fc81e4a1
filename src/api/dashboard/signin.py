"""Sign-in and sign-out: an API key is exchanged for a session cookie, once.

The key is posted in the form's body (never a URL) and is not kept: the cookie carries the
key's role and digest. The sign-in form itself is protected by a double-submit token (a
cookie and a form field that must match), so another site cannot sign a browser in with a
key of its choosing.
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from src.api import sessions
from src.api.auth import authenticate
from src.api.dashboard.rendering import render
from src.api.errors import UnauthorizedError
from src.config import Settings

router = APIRouter(prefix="/dashboard", include_in_schema=False)

LOGIN_COOKIE = "taskjet_login"
MAX_FORM_BYTES = 4096


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.broker.settings
    return settings


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or _settings(request).public_url.startswith("https:")


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:MAX_FORM_BYTES].decode(errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


def _login_page(request: Request, error: str | None, status_code: int) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    context = {"login_token": token, "error": error}
    response = render(request, "login.html", context, status_code)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=600,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


class SignInGuard:
    """Failed sign-ins per client address and server process: past `MAX_FAILURES` within
    `WINDOW_S`, that address is refused (429) until the window has passed, so keys cannot be
    guessed at speed through the form. Bounded: the oldest addresses are forgotten first."""

    MAX_FAILURES = 10
    WINDOW_S = 60.0
    MAX_ADDRESSES = 10_000

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}

    def _recent(self, address: str) -> list[float]:
        now = time.monotonic()
        recent = [t for t in self._failures.get(address, []) if now - t < self.WINDOW_S]
        if recent:
            self._failures[address] = recent
        else:
            self._failures.pop(address, None)
        return recent

    def blocked(self, address: str) -> bool:
        return len(self._recent(address)) >= self.MAX_FAILURES

    def failed(self, address: str) -> None:
        self._failures.setdefault(address, []).append(time.monotonic())
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


@router.get("/login", response_model=None)
async def login_form(request: Request) -> Response:
    if _settings(request).auth == "disabled":
        return RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    return _login_page(request, None, 200)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Check the key and hand out the session; the page answers 401 with a wrong key."""
    settings = _settings(request)
    guard: SignInGuard = request.app.state.sign_in_guard
    if guard.blocked(_address(request)):
        return _login_page(request, "Too many failed sign-ins: wait a minute.", 429)
    form = await _form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form.get("login_token", "")):
        return _login_page(request, "The sign-in form expired: try again.", 403)
    try:
        caller = authenticate(settings, form.get("key", "").strip() or None)
    except UnauthorizedError:
        guard.failed(_address(request))
        return _login_page(request, "That key is not valid.", 401)
    value, _ = sessions.issue(settings, caller.role, caller.key_id)
    response = RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=sessions.SESSION_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Ends the session in this browser (the form carries the session's CSRF token)."""
    settings = _settings(request)
    session = sessions.read(settings, request.cookies.get(sessions.COOKIE))
    if session is not None:
        sessions.check_csrf(session, "POST", (await _form(request)).get("csrf_token"))
    response = RedirectResponse("/dashboard/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
