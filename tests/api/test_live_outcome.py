"""The final live event carries the outcome (result or error, capped in size), and the client
WebSocket `/ws/{client_id}` mirrors `/sse/{client_id}`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from src.tasks.broker import broker as app_broker
from tests.api.conftest import bearer
from tests.api.test_live import STEPPER, _collect, _submit
from tests.conftest import ADMIN_KEY, READ_KEY, StartWorker
from tests.support import tasks


async def test_the_final_event_carries_the_result_with_secrets_hidden(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.echo.kiq({"total": 3, "api_token": "s3cret", "rows": [1, 2]})
    events = await asyncio.wait_for(_collect(server, handle.task_id), 30)
    final = events[-1][1]
    assert final["status"] == "completed"
    assert final["result"] == {"total": 3, "api_token": "***", "rows": [1, 2]}
    assert "result_omitted" not in final
    assert "error" not in final
    assert all("result" not in data for _, data in events[:-1]), "only on the final event"


async def test_a_falsy_result_is_still_carried(server: str, start_worker: StartWorker) -> None:
    await start_worker()
    handle = await tasks.echo.kiq(0)
    events = await asyncio.wait_for(_collect(server, handle.task_id), 30)
    assert events[-1][1]["result"] == 0


async def test_the_final_event_of_a_failure_carries_the_error(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.decline.kiq(42)
    events = await asyncio.wait_for(_collect(server, handle.task_id), 30)
    final = events[-1][1]
    assert final["status"] == "error"
    assert final["error"] == {
        "type": "PaymentDeclinedError",
        "message": "card declined for 42",
    }
    assert "result" not in final


async def test_a_task_cancelled_while_queued_ends_with_the_error(server: str) -> None:
    task_id = await _submit(server, STEPPER, kwargs={"steps": 1})  # no worker: stays queued
    async with httpx.AsyncClient(base_url=server, headers=bearer(ADMIN_KEY)) as admin:
        assert (await admin.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 200
    events = await asyncio.wait_for(_collect(server, task_id), 30)
    final = events[-1][1]
    assert final["status"] == "cancelled"
    assert final["error"] == {
        "type": "TaskCancelledError",
        "message": "task was cancelled before it started",
    }


@pytest.mark.settings(event_result_max_bytes=64)
async def test_a_result_over_the_cap_is_flagged_with_a_link_to_the_record(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    big = "x" * 100
    handle = await tasks.echo.kiq(big)
    events = await asyncio.wait_for(_collect(server, handle.task_id), 30)
    final = events[-1][1]
    assert final["result_omitted"] is True
    assert final["result"] is None
    assert final["record"] == f"/api/v1/tasks/{handle.task_id}"
    small = await tasks.echo.kiq("y" * 10)
    assert (await _collect(server, small.task_id))[-1][1]["result"] == "y" * 10


async def test_the_final_event_made_from_the_record_has_the_result_too(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.echo.kiq({"n": 7})
    await _collect(server, handle.task_id)
    await app_broker.js.purge_stream(app_broker.layout.events_stream)
    events = await asyncio.wait_for(_collect(server, handle.task_id), 30)
    assert [(data["status"], data["result"]) for _, data in events] == [("completed", {"n": 7})]


def _ws(server: str, path: str) -> str:
    return server.replace("http", "ws", 1) + path


async def test_the_client_websocket_mirrors_the_client_stream(
    server: str, start_worker: StartWorker
) -> None:
    await start_worker()
    client_id = f"c{uuid.uuid4().hex[:8]}"
    got: list[dict[str, Any]] = []
    async with connect(
        _ws(server, f"/ws/{client_id}"), additional_headers=bearer(READ_KEY)
    ) as websocket:
        # The stream says when it listens: every task sent from then on is seen.
        ready = orjson.loads(await asyncio.wait_for(websocket.recv(), 30))
        assert ready == {"type": "ready", "client_id": client_id}
        mine = [
            await _submit(server, STEPPER, kwargs={"steps": 1}, options={"client_id": client_id})
            for _ in range(2)
        ]
        await _submit(server, STEPPER, kwargs={"steps": 1}, options={"client_id": "other"})

        async def receive_until_two_completed() -> None:
            async for raw in websocket:
                got.append(orjson.loads(raw))
                if sum(d["status"] == "completed" for d in got) >= 2:
                    return

        await asyncio.wait_for(receive_until_two_completed(), 30)
    assert {d["task_id"] for d in got} == set(mine)
    finals = [d for d in got if d["status"] == "completed"]
    assert all(d["result"] == 1 for d in finals), "the outcome is in the final event"


@pytest.mark.parametrize(
    ("path", "key"),
    [("/ws/web-1", None), ("/ws/web-1", "y" * 30), ("/ws/bad.name", READ_KEY)],
)
async def test_the_client_websocket_refuses_at_the_handshake(
    server: str, path: str, key: str | None
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(_ws(server, path), additional_headers=bearer(key) if key else {}):
            pass
    assert refused.value.response.status_code == 403


async def test_the_client_websocket_takes_a_query_token(server: str) -> None:
    async with connect(_ws(server, f"/ws/web-1?token={READ_KEY}")) as websocket:
        await websocket.close()
