"""Live updates over Server-Sent Events and WebSockets, served by uvicorn on a real port."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from src.tasks.broker import broker as app_broker
from tests.api.conftest import bearer
from tests.conftest import ADMIN_KEY, READ_KEY, StartWorker

STEPPER = "tests.support.tasks:stepper"
GATED = "tests.support.tasks:gated"


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str | None, dict[str, Any] | str]]:
    """(id, data) per event; (None, comment) for comments."""
    event_id: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield None, line[1:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield event_id, orjson.loads("\n".join(data))
            event_id, data = None, []


async def _submit(base: str, task: str, **body: Any) -> str:
    async with httpx.AsyncClient(base_url=base, headers=bearer(ADMIN_KEY)) as client:
        response = await client.post("/api/v1/tasks", json={"task": task, **body})
        assert response.status_code == 202, response.text
        task_id: str = response.json()["task_id"]
        return task_id


async def _collect(base: str, task_id: str, headers: dict[str, str] | None = None) -> list[Any]:
    events: list[Any] = []
    async with (
        httpx.AsyncClient(base_url=base, headers=bearer(READ_KEY), timeout=30) as client,
        client.stream("GET", f"/api/v1/tasks/{task_id}/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event_id, data in sse(response):
            if event_id is not None or isinstance(data, dict):
                events.append((event_id, data))
    return events


async def test_sse_delivers_progress_in_order_and_ends(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    task_id = await _submit(server, STEPPER, kwargs={"steps": 5})
    events = await asyncio.wait_for(_collect(server, task_id), 30)
    statuses = [data["status"] for _, data in events]
    assert statuses == ["started"] + ["processing"] * 5 + ["completed"]
    assert [data["progress"] for _, data in events[1:6]] == [1, 2, 3, 4, 5]
    assert all(data["total"] == 5 and data["stage"] == "step" for _, data in events[1:6])
    assert {data["task_id"] for _, data in events} == {task_id}
    assert set(events[0][1]) == {
        "task_id",
        "status",
        "message",
        "progress",
        "total",
        "stage",
        "timestamp",
    }
    ids = [int(event_id) for event_id, _ in events]
    assert ids == sorted(set(ids)), "ids are increasing stream sequences"


async def test_sse_resumes_after_last_event_id(server: str, start_worker: StartWorker) -> None:
    await start_worker()
    task_id = await _submit(server, STEPPER, kwargs={"steps": 4})
    everything = await _collect(server, task_id)
    third_id = everything[2][0]
    rest = await _collect(server, task_id, headers={"Last-Event-ID": third_id})
    assert rest == everything[3:]


async def test_sse_follows_a_running_task_live(server: str, start_worker: StartWorker) -> None:
    await start_worker()
    key = uuid.uuid4().hex
    task_id = await _submit(server, GATED, kwargs={"key": key})
    seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=server, headers=bearer(READ_KEY), timeout=30) as client,
        client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response,
    ):
        async for _, data in sse(response):
            if not isinstance(data, dict):
                continue
            seen.append(f"{data['status']}:{data['stage']}")
            if data["stage"] == "waiting":
                await app_broker.results.redis.set(f"test-gate:{key}", 1)
    assert seen == ["started:None", "processing:waiting", "processing:done", "completed:None"]


async def test_sse_of_a_finished_task_whose_events_expired(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    task_id = await _submit(server, STEPPER, kwargs={"steps": 1})
    await _collect(server, task_id)
    await app_broker.js.purge_stream(app_broker.layout.events_stream)
    events = await asyncio.wait_for(_collect(server, task_id), 30)
    assert [data["status"] for _, data in events] == ["completed"]


async def test_sse_needs_a_key_and_takes_it_as_a_query_token(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    task_id = await _submit(server, STEPPER, kwargs={"steps": 1})
    async with httpx.AsyncClient(base_url=server) as client:
        denied = await client.get(f"/api/v1/tasks/{task_id}/events")
        assert denied.status_code == 401
        async with client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", params={"token": READ_KEY}
        ) as response:
            assert response.status_code == 200
            statuses = [d["status"] async for _, d in sse(response) if isinstance(d, dict)]
    assert statuses[-1] == "completed"


async def test_websocket_sends_the_same_events(server: str, start_worker: StartWorker) -> None:
    await start_worker()
    task_id = await _submit(server, STEPPER, kwargs={"steps": 3})
    url = server.replace("http", "ws", 1) + f"/api/v1/tasks/{task_id}/ws"
    async with connect(url, additional_headers=bearer(READ_KEY)) as websocket:
        messages = [orjson.loads(m) async for m in websocket]
    assert [m["status"] for m in messages] == ["started"] + ["processing"] * 3 + ["completed"]
    assert [m["progress"] for m in messages[1:4]] == [1, 2, 3]


@pytest.mark.parametrize(("key", "status"), [(None, 4401), ("y" * 30, 4401)])
async def test_websocket_refuses_without_a_valid_key(
    server: str, key: str | None, status: int
) -> None:
    task_id = await _submit(server, STEPPER, kwargs={"steps": 1})
    url = server.replace("http", "ws", 1) + f"/api/v1/tasks/{task_id}/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=bearer(key) if key else {}):
            pass
    assert refused.value.response.status_code == 403


async def test_client_stream_gets_every_task_of_its_client(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    client_id = f"c{uuid.uuid4().hex[:8]}"

    async def listen(ready: asyncio.Event, want: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with (
            httpx.AsyncClient(base_url=server, headers=bearer(READ_KEY), timeout=30) as client,
            client.stream("GET", f"/sse/{client_id}") as response,
        ):
            async for _, data in sse(response):
                if isinstance(data, dict) and data.get("type") == "ready":
                    assert not ready.is_set(), "ready comes once, first"
                    assert data == {"type": "ready", "client_id": client_id}
                    ready.set()
                elif isinstance(data, dict):
                    assert ready.is_set(), "nothing comes before ready"
                    got.append(data)
                    if sum(d["status"] == "completed" for d in got) == want:
                        return got
        return got

    readies = [asyncio.Event(), asyncio.Event()]
    listeners = [asyncio.create_task(listen(r, 2)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    mine = [
        await _submit(server, STEPPER, kwargs={"steps": 1}, options={"client_id": client_id})
        for _ in range(2)
    ]
    await _submit(server, STEPPER, kwargs={"steps": 1}, options={"client_id": "someone-else"})
    for got in await asyncio.wait_for(asyncio.gather(*listeners), 30):
        assert {d["task_id"] for d in got} == set(mine)
        for task_id in mine:
            statuses = [d["status"] for d in got if d["task_id"] == task_id]
            assert statuses == ["started", "processing", "completed"]


async def test_client_websocket_says_ready_first_then_misses_nothing(
    server: str, start_worker: StartWorker
) -> None:
    """A client that dispatches once `ready` came gets every event of its task, from the
    first (no probes, no waiting for the subscription)."""
    await start_worker()
    client_id = f"c{uuid.uuid4().hex[:8]}"
    url = server.replace("http", "ws", 1) + f"/ws/{client_id}?token={READ_KEY}"
    for _ in range(3):  # each time anew: the subscription is in place when ready is sent
        async with connect(url) as socket:
            ready = orjson.loads(await asyncio.wait_for(socket.recv(), 30))
            assert ready == {"type": "ready", "client_id": client_id}
            task_id = await _submit(
                server, STEPPER, kwargs={"steps": 1}, options={"client_id": client_id}
            )
            statuses = []
            while not statuses or statuses[-1] != "completed":
                event = orjson.loads(await asyncio.wait_for(socket.recv(), 30))
                assert event["task_id"] == task_id
                statuses.append(event["status"])
            assert statuses == ["started", "processing", "completed"]
