"""Live workers: each worker process reports itself to Redis with an expiry.

A record stuck in STARTED whose worker no longer reports belonged to a worker that died; the
API's `requeue-orphaned` hands such tasks back at once instead of after `ack_wait`.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import TYPE_CHECKING

import orjson
from pydantic import BaseModel

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker


class WorkerInfo(BaseModel):
    worker_id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    started_at: float
    seen_at: float


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class WorkerRegistry:
    def __init__(self, broker: JetStreamBroker) -> None:
        self._broker = broker
        self.worker_id = new_worker_id()
        self._started_at = time.time()

    async def report(self, running: int, queues: list[str]) -> None:
        broker = self._broker
        settings = broker.settings
        info = WorkerInfo(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=queues,
            concurrency=settings.worker_concurrency,
            running=running,
            started_at=self._started_at,
            seen_at=time.time(),
        )
        await broker.results.redis.set(
            broker.layout.worker_key(self.worker_id),
            orjson.dumps(info.model_dump()),
            px=int(settings.worker_ttl_s * 1000),
        )

    async def withdraw(self) -> None:
        broker = self._broker
        await broker.results.redis.delete(broker.layout.worker_key(self.worker_id))

    async def alive(self) -> list[WorkerInfo]:
        redis = self._broker.results.redis
        keys = [key async for key in redis.scan_iter(self._broker.layout.workers_pattern)]
        if not keys:
            return []
        raws = await redis.mget(keys)
        return sorted(
            (WorkerInfo.model_validate_json(raw) for raw in raws if raw),
            key=lambda w: w.worker_id,
        )
