"""JSON request bodies are strict JSON of bounded depth, or a 422 before any route sees them.

Python's own parser takes `NaN`, `Infinity` and `1e400` (which becomes infinity) and nests as
deep as its recursion limit allows: such a body would be accepted here and fail later, or fail
here as a 500. So every body the app would read as JSON (no content type, `application/json`,
`application/*+json`) is first parsed with orjson, which refuses non-finite numbers and stops at
1024 levels, and then measured: more than `TASKJET_API_MAX_JSON_DEPTH` levels of arrays and
objects is a 422 too. The body is then handed on unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.errors import error_response

_METHODS_WITH_BODY = {"POST", "PUT", "PATCH"}


def json_problem(value: Any, max_depth: int | None) -> str | None:
    """What makes a parsed JSON value unacceptable (too deep, a non-finite number), or None.

    Iterative, so that no depth of input can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            if isinstance(item, float) and not math.isfinite(item):
                return f"{item} is not a finite number"
            continue
        if max_depth is not None and depth > max_depth:
            return f"JSON nested deeper than {max_depth} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def _is_json(scope: Scope) -> bool:
    content_type: bytes | None = dict(scope["headers"]).get(b"content-type")
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class JsonGuardMiddleware:
    """Refuses JSON bodies that are not strict JSON or nest deeper than allowed, with 422."""

    def __init__(self, app: ASGIApp, max_depth: Callable[[], int]) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _METHODS_WITH_BODY
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _problem(body, self.max_depth()) if body.strip() else None
        if problem is not None:
            await error_response(
                422,
                "validation_error",
                problem,
                [{"loc": ["body"], "msg": problem, "type": "json_invalid"}],
            )(scope, receive, send)
            return

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


def _problem(body: bytes, max_depth: int) -> str | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc):
            return f"JSON nested deeper than {max_depth} levels"
        return f"invalid JSON: {exc}"
    return json_problem(value, max_depth)
