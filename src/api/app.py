"""The FastAPI application factory: `uvicorn src.api.app:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from src import __version__
from src.api.errors import install_error_handlers
from src.api.routers import health, process, tasks
from src.config import Settings
from src.tasks.broker import broker as default_broker
from src.tasks.jetstream import JetStreamBroker


def create_app(settings: Settings | None = None, broker: JetStreamBroker | None = None) -> FastAPI:
    """Build the app; the lifespan starts the broker (NATS + Redis) and stops it cleanly."""
    app_broker = broker or default_broker
    if settings is not None:
        app_broker.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await app_broker.startup()
        app.state.broker = app_broker
        try:
            yield
        finally:
            await app_broker.shutdown()

    app = FastAPI(
        title="taskjet",
        version=__version__,
        description="Background tasks on NATS JetStream and Redis.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(process.router)
    app.include_router(tasks.router)
    app.include_router(health.router)
    return app
