"""Keys: only as a Bearer header, and as `?token=` on event streams alone."""

from __future__ import annotations

import base64

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from src.config import Settings
from tests.api.conftest import api_client
from tests.conftest import ADMIN_KEY, READ_KEY

TYPED = "tests.support.tasks:typed"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/v1/queues/dlq"),
        ("post", "/api/v1/tasks/requeue-orphaned"),
        ("get", "/api/v1/tasks"),
        ("get", "/api/v1/queues/status"),
        ("get", "/api/v1/queues/dlq"),
        ("get", "/api/v1/schedules"),
    ],
)
async def test_query_token_is_refused_outside_streams(
    settings: Settings, method: str, path: str
) -> None:
    async with api_client(settings, key=None) as client:
        response = await client.request(method, path, params={"token": ADMIN_KEY})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert ADMIN_KEY not in response.text


async def test_query_token_is_refused_for_submissions(settings: Settings) -> None:
    async with api_client(settings, key=None) as client:
        response = await client.post(
            "/api/v1/tasks",
            params={"token": ADMIN_KEY},
            json={"task": TYPED, "kwargs": {"name": "x"}},
        )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    [_basic("admin", "whatever"), {"Authorization": "Token abc"}, {"Authorization": "Bearer"}],
    ids=["basic", "other-scheme", "empty-bearer"],
)
async def test_a_header_that_is_no_bearer_key_never_falls_back_to_the_query(
    settings: Settings, header: dict[str, str]
) -> None:
    async with api_client(settings, key=None) as client:
        record = await client.get(
            "/api/v1/tasks/anything/events", params={"token": READ_KEY}, headers=header
        )
        assert record.status_code == 401
        stream = await client.get("/sse/web-1", params={"token": READ_KEY}, headers=header)
        assert stream.status_code == 401
        plain = await client.get("/api/v1/tasks", headers=header)
        assert plain.status_code == 401


async def test_query_token_opens_streams(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        submitted = await client.post(
            "/api/v1/tasks",
            json={"task": TYPED, "kwargs": {"name": "x"}},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        task_id = submitted.json()["task_id"]
        async with client.stream("GET", "/sse/web-1", params={"token": READ_KEY}) as response:
            assert response.status_code == 200
        async with client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", params={"token": READ_KEY}
        ) as response:
            assert response.status_code == 200
    url = server.replace("http", "ws", 1) + f"/api/v1/tasks/{task_id}/ws"
    async with connect(f"{url}?token={READ_KEY}"):
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{url}?token={READ_KEY}", additional_headers=_basic("a", "b")):
            pass
    assert refused.value.response.status_code == 403
