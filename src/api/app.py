"""The FastAPI application factory: `uvicorn src.api.app:create_app --factory`."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from src import __version__
from src.api.auth import check_auth_configured
from src.api.body_limit import BodyLimitMiddleware
from src.api.errors import install_error_handlers
from src.api.routers import health, live, process, queues, schedules, tasks
from src.config import Settings
from src.tasks.broker import broker as default_broker
from src.tasks.jetstream import JetStreamBroker


def create_app(settings: Settings | None = None, broker: JetStreamBroker | None = None) -> FastAPI:
    """Build the app; the lifespan starts the broker (NATS + Redis) and stops it cleanly.

    Refuses to build without API keys unless `TASKJET_AUTH=disabled`, and imports the task
    modules workers run (`TASKJET_WORKER_MODULES`) so the API knows which tasks exist.
    """
    app_broker = broker or default_broker
    if settings is not None:
        app_broker.configure(settings)
    check_auth_configured(app_broker.settings)
    for module in app_broker.settings.worker_modules.split():
        importlib.import_module(module)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await app_broker.startup()
        app_broker.start_scheduler()
        try:
            yield
        finally:
            await app_broker.shutdown()

    app = FastAPI(
        title="taskjet",
        version=__version__,
        description="Background tasks on NATS JetStream and Redis. Send an API key as "
        "`Authorization: Bearer <key>`; roles `read`, `submit` and `admin`.",
        lifespan=lifespan,
    )
    app.state.broker = app_broker
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=lambda: app_broker.settings.api_max_body_bytes
    )
    install_error_handlers(app)
    app.include_router(process.router)
    app.include_router(tasks.router)
    app.include_router(queues.router)
    app.include_router(schedules.router)
    app.include_router(live.router)
    app.include_router(health.router)
    return app
