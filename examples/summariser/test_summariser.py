"""The summariser's own tests: a local stand-in for the model API, one real worker; the breaker
opens when the stand-in fails, fails calls fast while open, and the reset endpoint closes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
import pytest
import pytest_asyncio
from fastapi import FastAPI
from summariser_app import router

from src.engine.broker import JetStreamBroker
from src.testing import StartWorker

pytestmark = pytest.mark.taskjet_settings(worker_modules="summariser_tasks")


class StandIn:
    """A model API on a free local port: summarises, or answers 503 while `failing`."""

    def __init__(self) -> None:
        self.failing = False
        self.calls = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        text = orjson.loads(await reader.readexactly(length))["text"]
        self.calls += 1
        status, body = (
            (b"503 Service Unavailable", b"{}")
            if self.failing
            else (b"200 OK", orjson.dumps({"summary": text[:10]}))
        )
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@pytest_asyncio.fixture
async def model(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StandIn]:
    stand_in = StandIn()
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("SUMMARISER_MODEL_URL", f"http://127.0.0.1:{port}")
    async with server:
        yield stand_in
        server.close()
        await server.wait_closed()


@pytest_asyncio.fixture
async def client(
    model: StandIn, taskjet_broker: JetStreamBroker, taskjet_worker: StartWorker
) -> AsyncIterator[httpx.AsyncClient]:
    await taskjet_worker()  # after `model`: the worker inherits SUMMARISER_MODEL_URL
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://summariser") as http:
        yield http


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_a_summary_goes_through_the_closed_breaker(
    client: httpx.AsyncClient, model: StandIn
) -> None:
    started = (await client.post("/summarise", json={"text": "a long article about NATS"})).json()

    async def done() -> bool:
        return (await client.get(started["status_url"])).json()["state"] == "SUCCESS"

    await until(done)
    status = (await client.get(started["status_url"])).json()
    assert status["summary"] == "a long art"
    assert (await client.get("/model/breaker")).json()["state"] == "closed"


async def test_the_breaker_opens_when_the_model_fails_and_the_reset_closes_it(
    client: httpx.AsyncClient, model: StandIn, taskjet_broker: JetStreamBroker
) -> None:
    model.failing = True
    for n in range(3):
        await client.post("/summarise", json={"text": f"text {n}"})

    async def opened() -> bool:
        return (await client.get("/model/breaker")).json()["state"] == "open"

    await until(opened)
    assert model.calls >= 3
    # While open, tasks fail fast without calling the model; the retry waits for the open time.
    late = (await client.post("/summarise", json={"text": "while open"})).json()

    async def waiting() -> bool:
        return (await client.get(late["status_url"])).json()["state"] == "RETRYING"

    await until(waiting)
    record = await taskjet_broker.records.get(late["task_id"])
    assert record is not None
    assert record.error is not None
    assert record.error.type == "CircuitOpenError"  # failed fast, without calling the model
    breaker = (await client.get("/model/breaker")).json()
    assert breaker["retry_in_s"] > 0
    model.failing = False
    assert (await client.post("/model/breaker/reset")).json() == {"reset": ["summariser-model"]}
    assert (await client.get("/model/breaker")).json()["state"] == "closed"


async def test_an_unknown_summary_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get("/summarise/no-such-task")).status_code == 404
    assert (await client.post("/model/breaker/reset")).json() == {"reset": []}  # never used
