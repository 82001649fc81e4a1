"""Links in answers, made without the request's `Host` header.

`Host` is whatever the client says it is; echoed into links it lets anyone who can place a
request (or poison a cache) point clients elsewhere. Links are built from
`TASKJET_PUBLIC_URL` when it is set, and are paths relative to the server otherwise.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from src.api.schemas import TaskLinks

_MARK = "0task0id0"


def absolute(request: HTTPConnection, path: str) -> str:
    """`path` (a route path) as the URL clients should use."""
    public_url: str = request.app.state.broker.settings.public_url
    if public_url:
        return public_url + path
    return str(request.scope.get("root_path", "")).rstrip("/") + path


def task_path(request: HTTPConnection, task_id: str) -> str:
    """The path of a task (the `get_task` route): the route table is searched once per app,
    not for every submitted task."""
    state = request.app.state
    try:
        prefix, suffix = state.task_path
    except AttributeError:
        prefix, _, suffix = request.app.url_path_for("get_task", task_id=_MARK).partition(_MARK)
        state.task_path = prefix, suffix
    if not task_id or "/" in task_id:  # what the route would not match: refused as before
        return str(request.app.url_path_for("get_task", task_id=task_id))
    return f"{prefix}{task_id}{suffix}"


def link_paths(request: HTTPConnection, task_id: str) -> dict[str, str]:
    """A task's links, as `TaskLinks` holds them."""
    base = absolute(request, task_path(request, task_id))
    websocket = base.replace("http", "ws", 1) if base.startswith("http") else base
    return {
        "self": base,
        "events": f"{base}/events",
        "websocket": f"{websocket}/ws",
        "cancel": f"{base}/cancel",
    }


def task_links(request: HTTPConnection, task_id: str) -> TaskLinks:
    return TaskLinks(**link_paths(request, task_id))
