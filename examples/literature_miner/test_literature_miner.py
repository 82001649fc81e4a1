"""The literature miner's own tests: the app (taskjet's API and the miner's page) served by
uvicorn on a free port, one real worker; the task's progress arrives in order over SSE and over
the WebSocket, and its retries are set 30, 60 and 120 s apart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import pytest_asyncio
import uvicorn
from miner_app import create
from miner_tasks import mine_literature
from websockets.asyncio.client import connect

from src.config import Settings
from src.embedded import free_port
from src.engine.broker import JetStreamBroker
from src.engine.core.labels import TaskLabels
from src.engine.worker.retry import delay_s
from src.testing import StartWorker

pytestmark = pytest.mark.taskjet_settings(worker_modules="miner_tasks", auth="disabled")

TERMINAL = {"completed", "error", "cancelled"}
STAGES = ["search"] + ["read"] * 3 + ["extract", "done"]


@pytest_asyncio.fixture
async def served(
    taskjet_broker: JetStreamBroker, taskjet_worker: StartWorker
) -> AsyncIterator[str]:
    """The miner's app on a free port (the broker is the test's, already started)."""
    await taskjet_worker()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create(), port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the app did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


async def start_mining(base: str, client_id: str, papers: int = 3) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        search = {"query": "nats", "client_id": client_id, "papers": papers, "pause_s": 0}
        answer = await http.post("/miner/mine", json=search)
        assert answer.status_code == 202
        return str(answer.json()["task_id"])


def progress_of(events: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (e["status"], e["stage"], e["progress"], e["total"])
        for e in events
        if e["status"] == "processing"
    ]


EXPECTED = [("processing", stage, float(n), 5.0) for n, stage in enumerate(STAGES)]


async def test_progress_arrives_in_order_over_sse(served: str) -> None:
    client_id = f"c{uuid.uuid4().hex[:8]}"
    events: list[dict[str, object]] = []
    async with (
        httpx.AsyncClient(base_url=served, timeout=60) as http,
        http.stream("GET", f"/sse/{client_id}") as stream,
    ):
        lines = stream.aiter_lines()
        async for line in lines:  # the stream listens once its `ready` event comes
            if line.startswith("data:"):
                assert orjson.loads(line[5:]) == {"type": "ready", "client_id": client_id}
                break
        task_id = await start_mining(served, client_id)
        async for line in lines:
            if line.startswith("data:"):
                events.append(orjson.loads(line[5:]))
                if events[-1]["status"] in TERMINAL:
                    break
    assert {e["task_id"] for e in events} == {task_id}
    assert progress_of(events) == EXPECTED
    assert [e["message"] for e in events if e["stage"] == "read"] == [
        f"reading paper {n} of 3" for n in (1, 2, 3)
    ]
    assert events[-1]["status"] == "completed"
    assert events[-1]["result"] == {
        "query": "nats",
        "findings": [f"nats: finding {n}" for n in (1, 2, 3)],
    }


async def test_the_websocket_carries_the_same_events(served: str) -> None:
    client_id = f"c{uuid.uuid4().hex[:8]}"
    async with connect(served.replace("http", "ws", 1) + f"/ws/{client_id}") as socket:
        ready = orjson.loads(await asyncio.wait_for(socket.recv(), 60))
        assert ready == {"type": "ready", "client_id": client_id}  # listening: start it now
        task_id = await start_mining(served, client_id)
        events: list[dict[str, object]] = []
        while not events or events[-1]["status"] not in TERMINAL:
            event = orjson.loads(await asyncio.wait_for(socket.recv(), 60))
            assert event["task_id"] == task_id
            events.append(event)
    assert progress_of(events) == EXPECTED
    assert events[-1]["status"] == "completed"


async def test_the_page_is_served(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as http:
        page = await http.get("/miner")
    assert page.status_code == 200
    assert "new EventSource(`/sse/" in page.text
    assert "new WebSocket(" in page.text
    assert 'addEventListener("ready"' in page.text
    assert 'data.type === "ready"' in page.text


def test_retries_come_30_60_and_120_seconds_after_a_failure(taskjet_settings: Settings) -> None:
    policy = TaskLabels.read({}, mine_literature.labels, taskjet_settings).retry
    assert policy.max_retries == 3
    assert [delay_s(policy, failures) for failures in (1, 2, 3)] == [30.0, 60.0, 120.0]
