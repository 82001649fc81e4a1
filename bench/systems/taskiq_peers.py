"""Vanilla taskiq peers, library defaults: taskiq-nats `PullBasedJetStreamBroker` and
taskiq-redis `RedisStreamBroker`, both with taskiq-redis `RedisAsyncResultBackend`; and one
reference, taskiq-nats with a Redis write before each run (`StartMark`)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from redis.asyncio import Redis
from taskiq import AsyncBroker, TaskiqMessage, TaskiqMiddleware

from bench.procs import Proc
from bench.systems.base import (
    CONFIG_ENV,
    Sent,
    System,
    blocked_clients,
    clean_env,
    python,
    task_name,
)
from bench.workloads import ASYNC_FUNCS, Workload

RESULT_TTL_S = 3600


def _backend(config: dict[str, Any]) -> Any:
    from taskiq_redis import RedisAsyncResultBackend

    # Defaults (pickle serializer) but an expiry, and a prefix so runs never collide.
    return RedisAsyncResultBackend(
        config["redis_url"], result_ex_time=RESULT_TTL_S, prefix_str=config["prefix"]
    )


def _register(broker: AsyncBroker) -> AsyncBroker:
    for name, func in (
        ("noop", ASYNC_FUNCS["noop"]),
        ("io", ASYNC_FUNCS["io1ms"]),
        ("cpu", ASYNC_FUNCS["cpu"]),
    ):
        broker.register_task(func, task_name=f"bench.{name}")
    return broker


def build_nats(config: dict[str, Any]) -> AsyncBroker:
    from taskiq_nats import PullBasedJetStreamBroker

    broker = PullBasedJetStreamBroker(
        servers=config["nats_url"],
        subject=config["subject"],
        stream_name=config["stream"],
        durable=config["durable"],
    ).with_result_backend(_backend(config))
    return _register(broker)


def build_redis_stream(config: dict[str, Any]) -> AsyncBroker:
    from taskiq_redis import RedisStreamBroker

    broker = RedisStreamBroker(config["redis_url"], queue_name=config["queue"]).with_result_backend(
        _backend(config)
    )
    return _register(broker)


class _TaskiqPeer(System):
    worker_module: ClassVar[str]

    def build(self) -> AsyncBroker:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"redis_url": self.redis_url, "prefix": f"bench{self.tag}"}

    async def start(self) -> None:
        self.broker = self.build()
        await self.broker.startup()

    async def stop(self) -> None:
        await self.broker.shutdown()

    async def send(self, workload: Workload) -> Sent:
        task = self.broker.find_task(f"bench.{task_name(workload)}")
        assert task is not None
        handle = await (task.kiq() if workload.arg is None else task.kiq(workload.arg))
        return Sent(f"bench{self.tag}:{handle.task_id}".encode(), handle)

    async def fetch(self, sent: Sent) -> Any:
        result = await sent.handle.get_result()
        return result.return_value

    def worker_command(self, workers: int) -> list[str]:
        return [
            python(), "-m", "taskiq", "worker", f"{self.worker_module}:broker",
            "--workers", str(workers), "--log-level", self.ctx.log_level,
        ]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        return {**clean_env(), CONFIG_ENV: json.dumps(self.config())}


class TaskiqNats(_TaskiqPeer):
    name = "taskiq-nats"
    redis_db = 1
    worker_module = "bench.systems.taskiq_nats_worker"
    notes = "PullBasedJetStreamBroker (defaults: batch 1) + RedisAsyncResultBackend (pickle)"

    # Stream, subject and consumer names, with the phase's tag: one set per system.
    names: ClassVar[tuple[str, str, str]] = ("BENCHNATS", "tasks", "")

    def config(self) -> dict[str, Any]:
        stream, subject, durable = self.names
        return {
            **super().config(),
            "nats_url": self.ctx.nats_url,
            "subject": f"bench{self.tag}.{subject}",
            "stream": f"{stream}{self.tag}",
            "durable": f"bench{self.tag}{durable}",
        }

    def build(self) -> AsyncBroker:
        return build_nats(self.config())

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        config = self.config()
        try:
            info = await self.broker.js.consumer_info(config["stream"], config["durable"])  # type: ignore[attr-defined]
        except Exception:
            return False
        return int(info.num_waiting or 0) >= workers


class TaskiqRedis(_TaskiqPeer):
    name = "taskiq-redis"
    redis_db = 2
    worker_module = "bench.systems.taskiq_redis_worker"
    notes = "RedisStreamBroker + RedisAsyncResultBackend (pickle), defaults"

    def config(self) -> dict[str, Any]:
        return {**super().config(), "queue": f"bench{self.tag}"}

    def build(self) -> AsyncBroker:
        return build_redis_stream(self.config())

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        """Every worker process blocks in XREADGROUP."""
        return await blocked_clients(self.redis_url, "xreadgroup") >= workers


class StartMark(TaskiqMiddleware):
    """One Redis write before each run, awaited: the least a system that keeps a task's record
    before running it (as taskjet's STARTED mark) pays per task, added to taskiq-nats and
    nothing else. A reference for the latency goal, not a peer."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        super().__init__()
        self._redis = Redis.from_url(redis_url)
        self._prefix = prefix

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        await self._redis.hset(f"{self._prefix}:record:{message.task_id}", "state", "STARTED")
        return message

    async def shutdown(self) -> None:
        await self._redis.aclose()


def build_nats_marked(config: dict[str, Any]) -> AsyncBroker:
    broker = build_nats(config)
    return broker.with_middlewares(StartMark(config["redis_url"], config["prefix"]))


class TaskiqNatsMarked(TaskiqNats):
    """taskiq-nats with `StartMark`: measured beside it, the price of a record written before
    each run, with the same client libraries and nothing else changed."""

    name = "taskiq-nats+mark"
    redis_db = 7
    worker_module = "bench.systems.taskiq_nats_marked_worker"
    notes = "taskiq-nats as above, plus one awaited Redis write (HSET) before each run"
    names = ("BENCHMARK", "marked", "m")

    def build(self) -> AsyncBroker:
        return build_nats_marked(self.config())
