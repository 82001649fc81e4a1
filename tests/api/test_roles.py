"""Every route asks for the role it should, read from the routing table itself: a route added
without a role, or with a weaker one, fails here; and each route refuses keys below its role."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute

import src.api.routers as routers
from src.api.app import create_app
from src.api.auth import RoleCheck
from src.config import Settings, load_settings
from tests.api.conftest import api_client
from tests.conftest import READ_KEY, SUBMIT_KEY

Route = tuple[str, str]
# The role each route needs; None: open to anyone (health only).
EXPECTED: dict[Route, str | None] = {
    ("GET", "/health"): None,
    ("GET", "/health/workers"): "read",
    ("GET", "/health/workers/diagnostics"): "read",
    ("GET", "/api/v1/stats"): "read",
    ("GET", "/metrics"): "read",
    ("POST", "/process"): "submit",
    ("POST", "/api/v1/tasks"): "submit",
    ("GET", "/api/v1/tasks"): "read",
    ("POST", "/api/v1/tasks/requeue-orphaned"): "admin",
    ("POST", "/api/v1/tasks/bulk"): "admin",
    ("GET", "/api/v1/tasks/{task_id}"): "read",
    ("DELETE", "/api/v1/tasks/{task_id}"): "admin",
    ("POST", "/api/v1/tasks/{task_id}/cancel"): "admin",
    ("POST", "/api/v1/tasks/{task_id}/retry"): "admin",
    ("GET", "/api/v1/tasks/{task_id}/artifacts"): "read",
    ("GET", "/api/v1/tasks/{task_id}/artifacts/{name}"): "read",
    ("GET", "/api/v1/workflows"): "read",
    ("GET", "/api/v1/workflows/{workflow_id}"): "read",
    ("POST", "/api/v1/workflows/{workflow_id}/cancel"): "admin",
    ("GET", "/api/v1/tasks/{task_id}/events"): "read",
    ("WS", "/api/v1/tasks/{task_id}/ws"): "read",
    ("GET", "/sse/{client_id}"): "read",
    ("WS", "/ws/{client_id}"): "read",
    ("GET", "/api/v1/queues/status"): "read",
    ("GET", "/api/v1/queues/dlq"): "read",
    ("POST", "/api/v1/queues/dlq/requeue"): "admin",
    ("DELETE", "/api/v1/queues/dlq"): "admin",
    ("POST", "/api/v1/queues/{queue}/pause"): "admin",
    ("POST", "/api/v1/queues/{queue}/resume"): "admin",
    ("DELETE", "/api/v1/queues/{queue}"): "admin",
    ("POST", "/api/v1/schedules"): "admin",
    ("GET", "/api/v1/schedules"): "read",
    ("GET", "/api/v1/schedules/{schedule_id}"): "read",
    ("POST", "/api/v1/schedules/{schedule_id}/pause"): "admin",
    ("POST", "/api/v1/schedules/{schedule_id}/resume"): "admin",
    ("PATCH", "/api/v1/schedules/{schedule_id}"): "admin",
    ("POST", "/api/v1/schedules/{schedule_id}/run"): "admin",
    ("DELETE", "/api/v1/schedules/{schedule_id}"): "admin",
    ("GET", "/api/v1/registry"): "read",
    ("GET", "/api/v1/circuit-breakers"): "read",
    ("POST", "/health/workers/reset-circuit-breaker"): "admin",
}
PATH_VALUES = {
    "task_id": "0" * 32,
    "schedule_id": "s-1",
    "client_id": "web-1",
    "queue": "q1",
    "workflow_id": "0" * 32,
    "name": "a.pdf",
}
LOWER_KEYS = {"submit": [READ_KEY], "admin": [READ_KEY, SUBMIT_KEY]}


def _roles(dependant: Dependant) -> set[str]:
    found = {dependant.call.needed} if isinstance(dependant.call, RoleCheck) else set()
    for sub in dependant.dependencies:
        found |= _roles(sub)
    return found


def routing_table() -> dict[Route, str | None]:
    """Every route of every router module, with the role its dependencies grant."""
    table: dict[Route, str | None] = {}
    for module in pkgutil.iter_modules(routers.__path__):
        router = importlib.import_module(f"{routers.__name__}.{module.name}").router
        for route in router.routes:
            if isinstance(route, APIRoute):
                (role,) = _roles(route.dependant) or {None}
                table.update({(method, route.path): role for method in route.methods})
            elif isinstance(route, APIWebSocketRoute):
                table[("WS", route.path)] = "read"  # authorised in the handler: tested in test_live
    return table


def test_every_route_asks_for_the_role_it_should() -> None:
    assert routing_table() == EXPECTED


def test_the_app_serves_exactly_the_routers_routes() -> None:
    app = create_app(load_settings(api_keys=f"read:{READ_KEY}"))
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented == {route for route in EXPECTED if route[0] != "WS"}


def _url(path: str) -> str:
    return path.format(
        **{name: value for name, value in PATH_VALUES.items() if f"{{{name}}}" in path}
    )


def _body(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PATCH") else None


CASES = [
    (method, path, key)
    for (method, path), role in EXPECTED.items()
    if method != "WS" and role in LOWER_KEYS
    for key in LOWER_KEYS[role]
]


@pytest.mark.parametrize(("method", "path", "key"), CASES)
async def test_keys_below_a_routes_role_are_refused(
    settings: Settings, method: str, path: str, key: str
) -> None:
    async with api_client(settings, key=key) as client:
        response = await client.request(method, _url(path), json=_body(method))
    assert response.status_code == 403, (method, path, response.text)
    assert response.json()["error"]["code"] == "forbidden"


async def test_every_protected_route_needs_a_key(settings: Settings) -> None:
    async with api_client(settings, key=None) as client:
        for (method, path), role in EXPECTED.items():
            if method == "WS" or role is None:
                continue
            response = await client.request(method, _url(path), json=_body(method))
            assert response.status_code == 401, (method, path, response.text)


async def test_a_read_key_reads_everything_readable(settings: Settings) -> None:
    async with api_client(settings, key=READ_KEY) as client:
        for (method, path), role in EXPECTED.items():
            if method != "GET" or role != "read" or "events" in path or path.startswith("/sse"):
                continue
            response: httpx.Response = await client.get(_url(path))
            assert response.status_code in (200, 404), (path, response.text)
