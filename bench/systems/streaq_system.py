"""streaQ with Redis streams (coredis client): `streaq run <worker> --workers N`, 100 tasks at
once per worker process, results pickled (its default) under one Redis key per task."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bench.procs import Proc
from bench.systems.base import (
    QueuePeer,
    Sent,
    blocked_clients,
    python,
    task_name,
)
from bench.workloads import ASYNC_FUNCS, Workload

CONCURRENCY = 100


@asynccontextmanager
async def _quiet() -> AsyncIterator[None]:
    """streaQ's CLI logs two INFO lines per task and has no level option: the worker's
    lifespan (entered after the CLI set up logging) raises its logger to WARNING, as every
    other system's worker runs."""
    logging.getLogger("streaq").setLevel(logging.WARNING)
    yield


def build(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from streaq import Worker

    worker = Worker(
        redis_url=config["redis_url"],
        queue_name=config["queue"],
        concurrency=CONCURRENCY,
        lifespan=_quiet,
    )
    tasks = {
        name: worker.task(name=f"bench.{name}")(ASYNC_FUNCS[workload])
        for name, workload in (("noop", "noop"), ("io", "io1ms"), ("cpu", "cpu"))
    }
    return worker, tasks


class StreaqSystem(QueuePeer):
    name = "streaq"
    redis_db = 6
    stop_group = True
    parent_works = True  # `--workers N`: the parent runs one, N - 1 are forked
    notes = f"Redis streams, defaults (pickle) but {CONCURRENCY} tasks at once per process (16)"

    async def start(self) -> None:
        self.worker, self.tasks = build(self.config())
        self._client = self.worker.__asynccontextmanager__()
        await self._client.__aenter__()

    async def stop(self) -> None:
        await self._client.__aexit__(None, None, None)

    async def send(self, workload: Workload) -> Sent:
        task = self.tasks[task_name(workload)]
        handle = await (task.enqueue() if workload.arg is None else task.enqueue(workload.arg))
        return Sent(f"{self.worker.results_key}{handle.id}".encode(), handle)

    async def fetch(self, sent: Sent) -> Any:
        result = await sent.handle.result(timeout=5)
        return result.result

    def worker_command(self, workers: int) -> list[str]:
        return [
            python(), "-m", "streaq", "run", "bench.systems.streaq_worker:worker",
            "--workers", str(workers),
        ]  # fmt: skip

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        """Every worker process blocks in XREADGROUP."""
        return await blocked_clients(self.redis_url, "xreadgroup") >= workers
