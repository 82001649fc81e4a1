"""SAQ (Simple Async Queue) with its Redis queue: `saq <settings> --workers N`, 100 jobs at once
per worker process, results inside the job (JSON) in Redis.

A SAQ job's key is written at enqueue and rewritten as it starts, so the key existing says
nothing; a job is done when its result's transaction takes it out of the queue's `incomplete`
sorted set and rewrites its key with `SETEX` (the job's `ttl`, 600 s by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from bench.procs import Proc
from bench.systems.base import (
    QueuePeer,
    Sent,
    blocked_clients,
    task_name,
)
from bench.systems.saq_env import REDIS_PY, saq_python
from bench.workloads import ASYNC_FUNCS, Workload

CONCURRENCY = 100
# redis-py 7's pool size, said outright: redis-py 8 (the harness's client, or a worker run on
# it) caps a pool at 100 connections (`MaxConnectionsError` beyond), and a SAQ worker holds one
# per idle job slot (blocked in `BLMOVE`) and more for each running job.
MAX_CONNECTIONS = 2**31


async def noop(ctx: dict[str, Any]) -> int:
    return await ASYNC_FUNCS["noop"]()


async def io(ctx: dict[str, Any], *, arg: float) -> int:
    return await ASYNC_FUNCS["io1ms"](arg)


async def cpu(ctx: dict[str, Any], *, arg: int) -> int:
    return await ASYNC_FUNCS["cpu"](arg)


def build_queue(config: dict[str, Any]) -> Any:
    from saq.queue.redis import RedisQueue

    redis = Redis.from_url(config["redis_url"], max_connections=MAX_CONNECTIONS)
    return RedisQueue(redis, name=config["queue"])


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The worker settings `saq` reads: the queue, the functions, 100 jobs at once."""
    return {
        "queue": build_queue(config),
        "functions": [("noop", noop), ("io", io), ("cpu", cpu)],
        "concurrency": CONCURRENCY,
    }


class SaqSystem(QueuePeer):
    name = "saq"
    redis_db = 5
    # The result is written with SETEX in the job's final transaction; only that SETEX sets an
    # expiry on the job key (enqueue and start write it with SET), so its `expire` event
    # (keyspace class `g`) marks the moment the result became readable.
    result_events = ("expire",)
    keyspace_classes = "E$lg"
    stop_group = True
    parent_works = True  # `--workers N`: the parent runs one, N - 1 are forked
    notes = (
        f"RedisQueue, JSON, {CONCURRENCY} jobs at once per worker process (default 10); "
        f"workers on redis-py {REDIS_PY} in their own venv (saq[redis] wants < 8)"
    )

    async def start(self) -> None:
        self.python = await asyncio.to_thread(saq_python)
        self.queue = build_queue(self.config())
        await self.queue.connect()
        self.incomplete = self.queue.namespace("incomplete")

    async def stop(self) -> None:
        await self.queue.disconnect()

    async def send(self, workload: Workload) -> Sent:
        name = task_name(workload)
        job = await (
            self.queue.enqueue(name)
            if workload.arg is None
            else self.queue.enqueue(name, arg=workload.arg)
        )
        return Sent(job.id.encode(), job)

    async def fetch(self, sent: Sent) -> Any:
        from saq.job import Status

        job = await self.queue.job(sent.handle.key)
        if job is None or job.status != Status.COMPLETE:
            raise LookupError(f"job {sent.handle.key} not complete")
        return job.result

    async def count_done(self, redis: Redis, keys: Sequence[bytes]) -> int:
        """Jobs no longer in the queue's `incomplete` set (their result is written)."""
        scores = await redis.zmscore(self.incomplete, list(keys))
        return sum(1 for score in scores if score is None)

    def worker_command(self, workers: int) -> list[str]:
        return [
            self.python, "-m", "saq", "bench.systems.saq_worker.settings",
            "--workers", str(workers),
        ]  # fmt: skip

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        """Every job slot of every process waits in `BLMOVE`."""
        return await blocked_clients(self.redis_url, "blmove") >= workers * CONCURRENCY
