"""Celery with Redis as broker and result backend, `acks_late=True`, prefork pool.

Concurrency: prefork with as many pool processes as the others have worker processes
(`-c 1` / `-c 2`), so every system gets the same number of processes on the same 2 cores.
The workloads are the sync versions (`time.sleep` for I/O).
"""

from __future__ import annotations

import json
from typing import Any

from bench.systems.base import CONFIG_ENV, Sent, System, clean_env, python, task_name
from bench.workloads import SYNC_FUNCS, Workload


def build(config: dict[str, Any]) -> Any:
    from celery import Celery  # type: ignore[import-untyped]

    app = Celery("bench", broker=config["redis_url"], backend=config["redis_url"])
    app.conf.update(
        task_acks_late=True,
        task_default_queue=config["queue"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    for name, func in (
        ("noop", SYNC_FUNCS["noop"]),
        ("io", SYNC_FUNCS["io1ms"]),
        ("cpu", SYNC_FUNCS["cpu"]),
    ):
        app.task(name=f"bench.{name}", acks_late=True)(func)
    return app


class CelerySystem(System):
    name = "celery"
    redis_db = 3
    async_client = False
    notes = "Redis broker + backend, acks_late, prefork -c <workers>, sync tasks"

    def config(self) -> dict[str, Any]:
        return {"redis_url": self.redis_url, "queue": f"bench{self.tag}"}

    async def start(self) -> None:
        self.app = build(self.config())

    async def stop(self) -> None:
        self.app.close()

    async def send(self, workload: Workload) -> Sent:
        task = self.app.tasks[f"bench.{task_name(workload)}"]
        result = task.apply_async(() if workload.arg is None else (workload.arg,))
        key = self.app.backend.get_key_for_task(result.id)
        return Sent(key if isinstance(key, bytes) else str(key).encode(), result.id)

    async def fetch(self, sent: Sent) -> Any:
        meta = self.app.backend.get_task_meta(sent.handle)
        if meta.get("status") != "SUCCESS":
            raise LookupError(f"task {sent.handle} is {meta.get('status')}")
        return meta["result"]

    def worker_command(self, workers: int) -> list[str]:
        return [
            python(), "-m", "celery", "-A", "bench.systems.celery_worker", "worker",
            "-P", "prefork", "-c", str(workers), "-n", f"bench{self.tag}@%h",
            "--loglevel", self.ctx.log_level,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        return {**clean_env(), CONFIG_ENV: json.dumps(self.config())}
