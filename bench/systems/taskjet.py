"""taskjet: its own broker object, workers started as the container starts them: `taskjet
worker` (`python -m src.launcher`, taskiq's worker loop under taskjet's lighter manager)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from bench.procs import Proc
from bench.systems.base import Context, Sent, System, clean_env, python, task_name
from bench.workloads import Workload
from src.config import ENV_PREFIX, Settings, load_settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load exactly these settings."""
    env = clean_env()
    env["NATS_URL"] = settings.nats_url
    env["REDIS_URL"] = settings.redis_url
    for name, value in settings.model_dump(exclude={"nats_url", "redis_url"}).items():
        if isinstance(value, SecretStr):
            continue
        if value != Settings.model_fields[name].default:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env


def bench_settings(ctx: Context, tag: str, db: int = 0, **overrides: Any) -> Settings:
    return load_settings(
        nats_url=ctx.nats_url,
        redis_url=ctx.redis_url(db),
        stream=f"BENCH{tag}",
        subject_prefix=f"bench{tag}",
        redis_prefix=f"bench{tag}",
        **overrides,
    )


class Taskjet(System):
    name = "taskjet"
    redis_db = 0
    notes = "JetStreamBroker, guarantees on (ack after result saved), JSON results"

    def __init__(self, ctx: Context, tag: str) -> None:
        super().__init__(ctx, tag)
        self.settings = bench_settings(ctx, tag, self.redis_db)
        self._tasks: dict[str, Any] = {}

    async def start(self) -> None:
        from bench.systems import taskjet_tasks
        from src.tasks.broker import broker

        self.broker = broker
        self._tasks = taskjet_tasks.TASKS
        broker.configure(self.settings)
        await broker.startup()

    async def stop(self) -> None:
        await self.broker.shutdown()

    async def send(self, workload: Workload) -> Sent:
        task = self._tasks[task_name(workload)]
        handle = await (task.kiq() if workload.arg is None else task.kiq(workload.arg))
        return Sent(self.broker.layout.result_key(handle.task_id).encode(), handle.task_id)

    async def fetch(self, sent: Sent) -> Any:
        return (await self.broker.results.get_result(sent.handle)).return_value

    def worker_command(self, workers: int) -> list[str]:
        return [
            python(), "-m", "src.launcher", "src.tasks.broker:broker",
            "bench.systems.taskjet_tasks",
            "--workers", str(workers),
            "--max-async-tasks", str(self.settings.worker_concurrency),
            "--log-level", self.ctx.log_level,
            "--receiver", "src.tasks.broker:TaskjetReceiver",
        ]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        return settings_env(self.settings)

    async def worker_ready(self, proc: Proc, workers: int) -> bool:
        layout = self.broker.layout
        try:
            info = await self.broker.js.consumer_info(
                layout.stream, layout.consumer(self.settings.default_queue)
            )
        except Exception:
            return False
        return int(info.num_waiting or 0) >= workers
