"""`lifespan` for an application's own FastAPI app that dispatches taskjet tasks and reads their
records (the apps in `examples/`): the broker starts with the app, from the environment's
settings, and stops with it; taskjet's own API (`src.api.app`) has its own, with more to run.

    app = FastAPI(lifespan=lifespan)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from src.config import load_settings
from src.tasks.broker import broker


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    broker.configure(load_settings())
    await broker.startup()
    try:
        yield
    finally:
        await broker.shutdown()
