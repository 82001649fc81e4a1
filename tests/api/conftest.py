"""The app on real NATS and Redis: over ASGI in-process, or served by uvicorn on a real port
(for Server-Sent Events and WebSockets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from src.api.app import create_app
from src.config import Settings
from src.embedded import free_port
from tests.conftest import ADMIN_KEY
from tests.support import tasks as _registers_test_tasks  # noqa: F401
from tests.support.processes import eventually


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def api_client(
    settings: Settings, key: str | None = ADMIN_KEY
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (broker on real NATS and Redis), spoken to over ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = bearer(key) if key else {}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://taskjet", headers=headers
        ) as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as client:
        yield client


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn on a free port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:

        def started() -> bool:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            return bool(server.started)

        await eventually(started, what="uvicorn started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[str]:
    async with served(settings) as base:
        yield base
