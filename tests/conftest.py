"""Private NATS (JetStream) and Redis servers on free ports, and per-test isolation.

Each test gets its own stream, subject prefix and Redis prefix on the shared servers, so tests
never see each other's tasks. Tests that kill or restart servers use `private_servers`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from src.config import ENV_PREFIX, Settings, load_settings
from src.embedded import EmbeddedServers
from src.tasks.broker import broker as app_broker
from src.tasks.jetstream import JetStreamBroker
from src.tasks.layout import Layout
from tests.support.processes import Proc, eventually, spawn, waiting_pulls, worker_args

ADMIN_KEY = "admin-key-for-tests-0123456789"
SUBMIT_KEY = "submit-key-for-tests-0123456789"
READ_KEY = "read-key-for-tests-0123456789"

# Short leases and delays keep fault tests fast; production defaults are documented in README.
TEST_DEFAULTS: dict[str, Any] = {
    "api_keys": f"admin:{ADMIN_KEY},submit:{SUBMIT_KEY},read:{READ_KEY}",
    "worker_ttl_s": 3.0,
    "ack_wait_s": 3.0,
    "redelivery_delay_s": 0.5,
    "unknown_task_delay_s": 0.5,
    "connect_timeout_s": 2.0,
    "redis_timeout_s": 1.0,
}


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> None:
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        del os.environ[key]
    for key in ("NATS_URL", "REDIS_URL"):
        os.environ.pop(key, None)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServers]:
    embedded = EmbeddedServers.create(tmp_path_factory.mktemp("servers"), persistent=False)
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
def private_servers(tmp_path: Path) -> Iterator[EmbeddedServers]:
    """Servers of this test alone: it may stop, kill and restart them."""
    embedded = EmbeddedServers.create(tmp_path / "servers", persistent=True)
    embedded.start()
    yield embedded
    embedded.stop()


def isolated_settings(embedded: EmbeddedServers, **overrides: Any) -> Settings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "nats_url": embedded.nats.url,
        "redis_url": embedded.redis.url,
        "stream": f"T{tag}",
        "subject_prefix": f"t{tag}",
        "redis_prefix": f"t{tag}",
        **TEST_DEFAULTS,
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


@pytest.fixture
def settings(servers: EmbeddedServers, request: pytest.FixtureRequest) -> Settings:
    """Isolated settings; `@pytest.mark.settings(ack_wait_s=1)` overrides fields for one test."""
    marker = request.node.get_closest_marker("settings")
    return isolated_settings(servers, **(marker.kwargs if marker else {}))


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return settings_env(settings)


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[JetStreamBroker]:
    """The application's broker, started as a client (the sending side) with these settings."""
    app_broker.configure(settings)
    await app_broker.startup()
    yield app_broker
    await app_broker.shutdown()


@pytest.fixture
async def js(settings: Settings) -> AsyncIterator[JetStreamContext]:
    """The test's own view of JetStream, independent of any broker under test."""
    nc = await nats.connect(settings.nats_url)
    yield nc.jetstream()
    await nc.close()


StartWorker = Callable[..., Awaitable[Proc]]


@pytest.fixture
async def start_worker(
    env: dict[str, str], settings: Settings, tmp_path: Path, js: JetStreamContext
) -> AsyncIterator[StartWorker]:
    """Start `taskiq worker` processes, the stock CLI, and wait until they ask for work."""
    started: list[Proc] = []

    async def start(
        *modules: str,
        workers: int = 1,
        extra: tuple[str, ...] = (),
        env_overrides: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Proc:
        log = tmp_path / f"worker-{len(started)}.log"
        proc = spawn(
            worker_args(*modules, workers=workers, extra=extra),
            {**env, **(env_overrides or {})},
            log,
        )
        started.append(proc)
        if wait:
            consumer = Layout.from_settings(settings).consumer(settings.default_queue)

            async def ready() -> bool:
                if proc.process.poll() is not None:
                    raise AssertionError(f"worker exited early:\n{proc.output()}")
                return await waiting_pulls(js, settings.stream, consumer) >= workers

            await eventually(ready, what="worker ready")
        return proc

    yield start
    for proc in started:
        await proc.stop()


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Show the logs of a failed test's child processes."""
    if call.when == "call" and call.excinfo is not None:
        tmp = getattr(item, "funcargs", {}).get("tmp_path")
        if isinstance(tmp, Path):
            for log in sorted(tmp.glob("*.log")):
                item.add_report_section("call", log.name, log.read_text(errors="replace")[-6000:])
