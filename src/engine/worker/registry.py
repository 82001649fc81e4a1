"""Live workers: each worker process reports itself to Redis with an expiry.

A record stuck in STARTED whose worker no longer reports belonged to a worker that died; the
API's `requeue-orphaned` hands such tasks back at once instead of after `ack_wait`. A worker
whose fetch loops cannot run reports itself unhealthy, with the reason.

A report not renewed for `TASKJET_WORKER_TTL_S` is `stale` (the worker is gone or stuck): it
stays readable as such for as long again (`/health/workers`), then expires.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis

from src.config import Settings
from src.engine.core.layout import Layout
from src.engine.worker.inflight import InFlight
from src.engine.worker.vitals import Vitals, rss_bytes

logger = logging.getLogger("taskjet.workers")


class RunningTask(BaseModel):
    task_id: str
    task_name: str
    since: float = Field(description="Unix time the worker fetched it.")
    lease_extended_at: float | None = Field(
        default=None, description="Unix time its lease was last extended (None: not yet)."
    )


class WorkerInfo(BaseModel):
    worker_id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    started_at: float
    seen_at: float
    status: str = Field(
        default="ok",
        description="`ok`; `unhealthy` with the problems; `stale`: no report for "
        "`TASKJET_WORKER_TTL_S` (gone or stuck), dropped after as long again.",
    )
    problems: list[str] = Field(default_factory=list)
    processed: int = Field(default=0, description="Runs ended since the worker started.")
    failed: int = Field(default=0, description="Of those, runs that failed (retried or not).")
    mean_run_s_5m: float | None = Field(
        default=None, description="Mean run time of the runs ended in the last 5 minutes."
    )
    rss_bytes: int | None = Field(default=None, description="Resident memory.")
    loop_lag_s: float | None = Field(default=None, description="How late its event loop wakes.")
    tasks: list[str] = Field(default_factory=list, description="Names of the tasks it can run.")


class WorkerDiagnostics(WorkerInfo):
    running_tasks: list[RunningTask] = Field(default_factory=list)
    nats_rtt_s: float | None = Field(default=None, description="None: the last PING failed.")
    redis_rtt_s: float | None = Field(default=None, description="None: the last PING failed.")


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class WorkerRegistry:
    def __init__(
        self,
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        settings: Callable[[], Settings],
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._settings = settings
        self.worker_id = new_worker_id()
        self._started_at = time.time()
        self.vitals = Vitals()  # this worker process's own counts and measurements

    def watch_vitals(self, beating: Callable[[], bool]) -> Coroutine[None, None, None]:
        """The loop measuring this process's event loop and touching its heartbeat file."""
        return self.vitals.watch_loop(beating, self._settings().worker_heartbeat_dir)

    async def report(
        self,
        inflight: InFlight,
        queues: list[str],
        problems: list[str],
        tasks: list[str] | None = None,
    ) -> None:
        """Report this worker alive, with what it runs and how it is doing."""
        vitals = self.vitals
        running_tasks = [
            RunningTask(
                task_id=d.task_id,
                task_name=d.message.task_name,
                since=d.fetched_at,
                lease_extended_at=d.extended_at,
            )
            for d in inflight.deliveries
            if not d.settled
        ]
        info = WorkerDiagnostics(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=queues,
            concurrency=inflight.capacity,
            running=len(inflight),
            started_at=self._started_at,
            seen_at=time.time(),
            status="unhealthy" if problems else "ok",
            problems=problems,
            tasks=tasks or [],
            running_tasks=running_tasks,
            processed=vitals.processed,
            failed=vitals.failed,
            mean_run_s_5m=vitals.mean_run_s(),
            rss_bytes=rss_bytes(),
            loop_lag_s=vitals.loop_lag_s,
            nats_rtt_s=vitals.nats_rtt_s,
            redis_rtt_s=vitals.redis_rtt_s,
        )
        layout = self._layout()
        keep_ms = int(self._settings().worker_ttl_s * 2000)  # stale for the second half
        async with self._redis().pipeline(transaction=False) as pipe:
            pipe.set(layout.worker_key(self.worker_id), orjson.dumps(info.model_dump()), px=keep_ms)
            pipe.zadd(layout.workers_key, {self.worker_id: info.seen_at})
            pipe.zremrangebyscore(layout.workers_key, "-inf", info.seen_at - keep_ms / 1000)
            await pipe.execute()

    async def withdraw(self) -> None:
        layout = self._layout()
        async with self._redis().pipeline(transaction=False) as pipe:
            pipe.delete(layout.worker_key(self.worker_id))
            pipe.zrem(layout.workers_key, self.worker_id)
            await pipe.execute()

    async def alive(self) -> list[WorkerInfo]:
        """Workers that reported within `TASKJET_WORKER_TTL_S`."""
        return [
            WorkerInfo.model_validate(w.model_dump(exclude=DIAGNOSTICS))
            for w in await self.reports()
            if w.status != "stale"
        ]

    async def reports(self) -> list[WorkerDiagnostics]:
        """Every report still kept, live or `stale`, with its diagnostics."""
        redis, layout = self._redis(), self._layout()
        ids: Any = await redis.zrange(layout.workers_key, 0, -1)
        keys = [layout.worker_key(i.decode()) for i in ids]
        if not keys:
            return []
        stale_after = time.time() - self._settings().worker_ttl_s
        found: list[WorkerDiagnostics] = []
        for raw in await redis.mget(keys):
            if not raw:
                continue
            try:
                info = WorkerDiagnostics.model_validate_json(raw)
            except ValidationError as exc:  # written by something else: skip, never fail
                logger.warning("unreadable worker report skipped: %s", exc.errors()[:1])
                continue
            if info.seen_at < stale_after:
                info.status = "stale"
            found.append(info)
        return sorted(found, key=lambda w: w.worker_id)


# What only the diagnostics show.
DIAGNOSTICS = set(WorkerDiagnostics.model_fields) - set(WorkerInfo.model_fields)
