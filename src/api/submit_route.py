"""`POST /api/v1/tasks` without FastAPI's per-request machinery (dependency solving, its
request-handling wrappers), for the request every client sends: a JSON body.

It does what the FastAPI route (`routers/tasks.py`) does, in the same order: the caller's key
and role (`RoleCheck("submit")`), the key's quota, the body as `SubmitRequest` (a refusal is
the same `RequestValidationError`), then `submit`; errors go through the app's exception
handlers. The FastAPI route stays: it is what the OpenAPI document shows, and it answers every
request this one does not take on (another content type, an empty body), before anything was
done for them, so each answer is the one it has always been.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.auth import RoleCheck
from src.api.schemas import SubmitRequest
from src.api.submit import submit

PATH = "/api/v1/tasks"
_JSON = b"application/json"
_PASSED_ON = "taskjet.passed_on"


def lean_submit_route(router: ASGIApp) -> Route:
    """The route to put first in the app's `router`; what it passes on goes through that
    router again, where it is not matched a second time."""
    return _LeanRoute(PATH, LeanSubmit(router), methods=["POST"])


class _LeanRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_PASSED_ON):
            return Match.NONE, {}
        return super().matches(scope)


class LeanSubmit:
    def __init__(self, router: ASGIApp) -> None:
        self.router = router
        self.role = RoleCheck("submit", query_token=False)

    async def fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request as the FastAPI route takes it."""
        scope[_PASSED_ON] = True
        await self.router(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != _JSON:
            await self.fallback(scope, receive, send)
            return
        request = Request(scope, receive, send)
        raw = await request.body()
        if not raw.strip():
            await self.fallback(scope, _replay(raw, receive), send)
            return

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await self.handle(request, raw)
            await response(scope, receive, send)

        await wrap_app_handling_exceptions(app, request)(scope, receive, send)

    async def handle(self, request: Request, raw: bytes) -> Any:
        caller = await self.role(request, None)
        state = request.app.state
        state.submit_quota.take(caller)
        try:
            # The JSON guard let only strict JSON through, so orjson reads what json would.
            body = SubmitRequest.model_validate(orjson.loads(raw), from_attributes=True)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**err, "loc": ("body", *err["loc"])} for err in errors]
            ) from None
        return await submit(request, body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, handed on as if it had not been."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
