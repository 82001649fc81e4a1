"""What the harness needs from each system: a worker command, a client that sends tasks, and
the Redis key under which each task's result appears."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from redis.asyncio import Redis

from bench.measure import count_existing
from bench.procs import Proc, tree
from bench.workloads import TASK_FOR_WORKLOAD, Workload

CONFIG_ENV = "BENCH_CONFIG"


@dataclass(frozen=True)
class Context:
    """Where the private servers are, and how the workers should log."""

    nats_url: str
    redis_port: int
    log_level: str = "WARNING"

    def redis_url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{db}"


@dataclass
class Sent:
    """A task handed to a broker: the Redis key of its result, and the system's own handle."""

    key: bytes
    handle: Any


def config_from_env() -> dict[str, Any]:
    """A worker module's configuration, passed by the harness as JSON in `BENCH_CONFIG`."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set: this module is started by `python -m bench`")
    config: dict[str, Any] = json.loads(raw)
    return config


def clean_env() -> dict[str, str]:
    """The harness's environment minus anything that could point a child at other servers."""
    drop = ("TASKJET_", "NATS_URL", "REDIS_URL", CONFIG_ENV)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


class System(ABC):
    """One system under test: its client lives in the harness, its workers in child processes."""

    name: ClassVar[str]
    redis_db: ClassVar[int]
    # Redis commands that write a result (keyspace event names), for latency measurement, and
    # the `notify-keyspace-events` classes that make Redis announce them.
    result_events: ClassVar[tuple[str, ...]] = ("set",)
    keyspace_classes: ClassVar[str] = "E$l"
    # Whether `send` really awaits I/O (True) or blocks in a synchronous client (False).
    async_client: ClassVar[bool] = True
    # Whether stopping signals every worker process, not only the parent: CLIs whose extra
    # workers are plain `multiprocessing` children, which the parent waits for but never stops.
    stop_group: ClassVar[bool] = False
    # Whether the CLI's parent process is itself a worker (`--workers N`: N processes in all).
    parent_works: ClassVar[bool] = False
    notes: ClassVar[str] = ""

    def __init__(self, ctx: Context, tag: str) -> None:
        self.ctx = ctx
        self.tag = tag

    @property
    def redis_url(self) -> str:
        return self.ctx.redis_url(self.redis_db)

    # Client side ------------------------------------------------------------------------
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def send(self, workload: Workload) -> Sent:
        """Hand one task of this workload to the broker."""

    async def send_many(self, workload: Workload, n: int, window: int) -> list[Sent]:
        """Hand `n` tasks to the broker as fast as this client goes from one process: async
        clients keep `window` sends in flight, sync clients send one after another."""
        if not self.async_client:
            return [await self.send(workload) for _ in range(n)]
        sent: list[Sent] = []
        for start in range(0, n, window):
            batch = min(window, n - start)
            sent.extend(await asyncio.gather(*(self.send(workload) for _ in range(batch))))
        return sent

    @abstractmethod
    async def fetch(self, sent: Sent) -> Any:
        """The task's return value, read back through the system's own result API."""

    async def count_done(self, redis: Redis, keys: Sequence[bytes]) -> int:
        """How many of these tasks have a readable result: their result keys that exist. A
        system whose key exists before the task is done says it otherwise."""
        return await count_existing(redis, keys)

    # Worker side ------------------------------------------------------------------------
    @abstractmethod
    def worker_command(self, workers: int) -> list[str]: ...

    @abstractmethod
    def worker_env(self) -> dict[str, str]: ...

    def expected_processes(self, workers: int) -> int:
        """A manager process plus one per worker (taskiq, Celery prefork, Dramatiq), or just
        the workers where the CLI's parent process is one of them (SAQ, streaQ)."""
        return workers + (0 if self.parent_works else 1)

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        """A system-specific sign that every worker process asks for work (default: none)."""
        return True

    async def wait_ready(self, proc: Proc, workers: int, timeout_s: float = 90.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if not proc.alive():
                raise RuntimeError(f"{self.name} worker exited early:\n{proc.output()}")
            if len(tree(proc.pid)) >= self.expected_processes(workers) and await self.worker_ready(
                proc, workers
            ):
                break
            if loop.time() > deadline:
                raise RuntimeError(f"{self.name} worker not ready:\n{proc.output()}")
            await asyncio.sleep(0.1)
        # One real round trip proves the whole path (client → broker → worker → result).
        probe = await self.send(_PROBE)
        while True:
            try:
                if await self.fetch(probe) == 1:
                    return
            except Exception:  # not there yet: each system has its own "not ready" error
                pass
            if loop.time() > deadline:
                raise RuntimeError(f"{self.name} probe task not done in {timeout_s}s")
            await asyncio.sleep(0.05)


_PROBE = Workload("noop", "readiness probe")


class QueuePeer(System, ABC):
    """A peer whose workers need only a Redis URL and a queue name (in `BENCH_CONFIG`)."""

    def config(self) -> dict[str, Any]:
        return {"redis_url": self.redis_url, "queue": f"bench{self.tag}"}

    def worker_env(self) -> dict[str, str]:
        return {**clean_env(), CONFIG_ENV: json.dumps(self.config())}


async def blocked_clients(redis_url: str, command: str) -> int:
    """Redis clients blocked in `command` (e.g. `xreadgroup`): workers waiting for work. Redis
    7.0 lists a stream consumer only once it has read a message, so this is the sign."""
    async with Redis.from_url(redis_url) as redis:
        clients = await redis.client_list()
    return sum(1 for c in clients if c.get("cmd") == command and "b" in c.get("flags", ""))


def python() -> str:
    return sys.executable


def task_name(workload: Workload) -> str:
    return TASK_FOR_WORKLOAD[workload.name]
