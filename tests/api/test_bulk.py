"""Bulk retry, cancel and delete of tasks: each task that cannot be is listed, the rest go on."""

from __future__ import annotations

import httpx

from src.config import Settings
from tests.api.conftest import api_client


async def _queued(client: httpx.AsyncClient, count: int) -> list[str]:
    ids = []
    for n in range(count):
        response = await client.post(
            "/api/v1/tasks",
            json={
                "task": "tests.support.tasks:typed",
                "kwargs": {"name": f"b{n}"},
                "options": {"queue": "email"},
            },
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["task_id"])
    return ids


async def _bulk(client: httpx.AsyncClient, action: str, ids: list[str]) -> dict[str, object]:
    response = await client.post("/api/v1/tasks/bulk", json={"action": action, "task_ids": ids})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_bulk_actions_report_each_task(settings: Settings) -> None:
    async with api_client(settings) as client:
        ids = await _queued(client, 3)
        unknown = "f" * 32
        refused = await _bulk(client, "delete", [ids[0], unknown])
        assert refused["done"] == []
        assert [f["task_id"] for f in refused["failed"]] == [ids[0], unknown]  # type: ignore[attr-defined]
        cancelled = await _bulk(client, "cancel", [*ids, ids[0]])
        assert cancelled == {"done": ids, "failed": []}
        for task_id in ids:
            state = (await client.get(f"/api/v1/tasks/{task_id}")).json()["state"]
            assert state == "CANCELLED"
        retried = await _bulk(client, "retry", ids[:1])
        assert retried == {"done": ids[:1], "failed": []}
        assert (await _bulk(client, "delete", ids[1:]))["done"] == ids[1:]
        assert (await client.get(f"/api/v1/tasks/{ids[1]}")).status_code == 404


async def test_a_bulk_request_is_checked(settings: Settings) -> None:
    async with api_client(settings) as client:
        empty = await client.post("/api/v1/tasks/bulk", json={"action": "delete", "task_ids": []})
        assert empty.status_code == 422
        odd = await client.post("/api/v1/tasks/bulk", json={"action": "explode", "task_ids": ["a"]})
        assert odd.status_code == 422
        many = {"action": "delete", "task_ids": [str(n) for n in range(501)]}
        assert (await client.post("/api/v1/tasks/bulk", json=many)).status_code == 422
