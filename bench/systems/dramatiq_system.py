"""Dramatiq with its Redis broker and the Results middleware (Redis backend).

`--processes <workers>` with Dramatiq's default 8 threads per process; sync tasks.
"""

from __future__ import annotations

import json
from typing import Any

from bench.procs import Proc
from bench.systems.base import CONFIG_ENV, Sent, System, clean_env, python, task_name
from bench.workloads import SYNC_FUNCS, Workload

READY_LINE = "Worker process is ready for action"


def build(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.results import Results
    from dramatiq.results.backends.redis import RedisBackend

    broker = RedisBroker(url=config["redis_url"])  # type: ignore[no-untyped-call]
    backend = RedisBackend(url=config["redis_url"])  # type: ignore[no-untyped-call]
    broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]
    actors = {
        name: dramatiq.actor(
            actor_name=f"bench_{name}",
            queue_name=config["queue"],
            broker=broker,
            store_results=True,
            max_retries=0,
        )(func)
        for name, func in (
            ("noop", SYNC_FUNCS["noop"]),
            ("io", SYNC_FUNCS["io1ms"]),
            ("cpu", SYNC_FUNCS["cpu"]),
        )
    }
    return broker, {"backend": backend, **actors}


class DramatiqSystem(System):
    name = "dramatiq"
    redis_db = 4
    result_events = ("lpush",)
    async_client = False
    notes = "Redis broker + Results (Redis), --processes <workers>, 8 threads each, sync tasks"

    def config(self) -> dict[str, Any]:
        return {"redis_url": self.redis_url, "queue": f"bench{self.tag}"}

    async def start(self) -> None:
        self.broker, self.parts = build(self.config())
        self.backend = self.parts["backend"]

    async def stop(self) -> None:
        self.broker.close()

    async def send(self, workload: Workload) -> Sent:
        actor = self.parts[task_name(workload)]
        message = actor.send() if workload.arg is None else actor.send(workload.arg)
        return Sent(self.backend.build_message_key(message).encode(), message)

    async def fetch(self, sent: Sent) -> Any:
        return self.backend.get_result(sent.handle)

    def worker_command(self, workers: int) -> list[str]:
        return [
            python(), "-m", "dramatiq", "bench.systems.dramatiq_worker:broker",
            "--processes", str(workers), "--threads", "8",
        ]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        return {**clean_env(), CONFIG_ENV: json.dumps(self.config())}

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        return proc.output(tail=1_000_000).count(READY_LINE) >= workers
