"""The FastAPI application factory: `uvicorn src.api.app:create_app --factory`."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from src import __version__
from src.api import dashboard, log_redaction
from src.api.auth import check_auth_configured
from src.api.body_limit import BodyLimitMiddleware
from src.api.errors import install_error_handlers
from src.api.json_guard import JsonGuardMiddleware
from src.api.metrics import CONTENT_TYPE, scrape
from src.api.metrics_port import MetricsPort
from src.api.quotas import SubmitQuota, allowed_queues, declared_queues
from src.api.routers import (
    artifacts,
    breakers,
    health,
    live,
    metrics,
    process,
    queues,
    registry,
    schedules,
    stats,
    tasks,
    workflows,
)
from src.api.streams import StreamLimits
from src.api.submit_route import lean_submit_route
from src.config import Settings
from src.engine import telemetry
from src.engine.broker import JetStreamBroker
from src.engine.core.heap import freeze_startup_heap
from src.tasks.broker import broker as default_broker


def create_app(settings: Settings | None = None, broker: JetStreamBroker | None = None) -> FastAPI:
    """Build the app; the lifespan starts the broker (NATS + Redis) and stops it cleanly.

    Refuses to build without API keys unless `TASKJET_AUTH=disabled`, and imports the task
    modules workers run (`TASKJET_WORKER_MODULES`) so the API knows which tasks exist. Query
    tokens are redacted from uvicorn's log from here on.
    """
    log_redaction.install()
    app_broker = broker or default_broker
    if settings is not None:
        app_broker.configure(settings)
    check_auth_configured(app_broker.settings)
    for module in app_broker.settings.worker_modules.split():
        importlib.import_module(module)
    app_broker.check_registered_labels()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await app_broker.startup()
        app_broker.start_scheduler()
        freeze_startup_heap()
        port = app_broker.settings.metrics_port
        keyless = MetricsPort(lambda: scrape(app_broker), port, CONTENT_TYPE) if port else None
        try:
            if keyless is not None:
                await keyless.start()
            yield
        finally:
            if keyless is not None:
                await keyless.stop()
            await app_broker.shutdown()

    app = FastAPI(
        title="taskjet",
        version=__version__,
        description="Background tasks on NATS JetStream and Redis. Send an API key as "
        "`Authorization: Bearer <key>` (event streams also take `?token=<key>`); roles `read`, "
        "`submit` and `admin`.",
        lifespan=lifespan,
        # A redirect would be built from the request's Host header: a wrong path is a 404.
        redirect_slashes=False,
    )
    app.state.broker = app_broker
    telemetry.instrument_app(app, app_broker.settings)
    app.state.streams = StreamLimits(lambda: app_broker.settings.streams_per_key)
    app.state.submit_quota = SubmitQuota(lambda: app_broker.settings)
    app.state.api_queues = allowed_queues(
        app_broker.settings,
        declared_queues(task.labels for task in app_broker.get_all_tasks().values()),
    )
    # The last added runs first: the size is checked before a JSON body is parsed.
    app.add_middleware(
        JsonGuardMiddleware, max_depth=lambda: app_broker.settings.api_max_json_depth
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=lambda: app_broker.settings.api_max_body_bytes
    )
    install_error_handlers(app)
    app.include_router(process.router)
    app.include_router(tasks.router)
    app.router.routes.insert(0, lean_submit_route(app.router))  # see submit_route.py
    app.include_router(queues.router)
    app.include_router(schedules.router)
    app.include_router(workflows.router)
    app.include_router(artifacts.router)
    app.include_router(registry.router)
    app.include_router(live.router)
    app.include_router(health.router)
    app.include_router(breakers.router)
    app.include_router(stats.router)
    app.include_router(metrics.router)
    if app_broker.settings.dashboard:
        dashboard.install(app)
    return app
