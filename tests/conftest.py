"""Private NATS (JetStream) and Redis servers on free ports, and per-test isolation.

Each test gets its own stream, subject prefix and Redis prefix on the shared servers, so tests
never see each other's tasks. Tests that kill or restart servers use `private_servers`.

No process outlives the test that started it: after each test's teardown, every process the run
started (found by the mark in its environment) must be gone, the shared servers apart; what is
left is killed and the test errors. At the end of the run, nothing at all may be left.
"""

from __future__ import annotations

import gc
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from src.config import ENV_PREFIX, Settings
from src.embedded import EmbeddedServers
from src.engine.broker import JetStreamBroker
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES
from src.tasks.broker import broker as app_broker
from src.testing import settings_env, settings_for
from tests.support.processes import (
    RUN_MARK,
    Proc,
    ProcessInfo,
    eventually,
    kill_all,
    left_behind,
    spawn,
    waiting_pulls,
    worker_args,
)

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
    # Each test makes its own streams on one server, which reserves their byte limits.
    "stream_max_bytes": 32 << 20,
}


os.environ[RUN_MARK] = uuid.uuid4().hex  # before anything starts: every child inherits it
_shared: list[EmbeddedServers] = []  # the session's servers, which outlive each test
_temp_root: list[Path] = []  # the run's temporary directory, where its Redis servers work


@pytest.fixture(scope="session", autouse=True)
def _clean_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    _temp_root[:] = [tmp_path_factory.getbasetemp().resolve()]
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        del os.environ[key]
    for key in ("NATS_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    # A developer's own .env (say, for compose.yaml) never reaches the tests or their children.
    empty = tmp_path_factory.mktemp("settings") / "empty.env"
    empty.write_text("")
    os.environ[f"{ENV_PREFIX}ENV_FILE"] = str(empty)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Sockets and streams a test left open are reported against that test (as errors), not
    against whichever later test happens to set off a garbage collection. What survives is
    frozen (`gc.freeze`: still freed by reference counting), so the next collection scans only
    what the next test made, not the whole heap again."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServers]:
    embedded = EmbeddedServers.create(tmp_path_factory.mktemp("servers"), persistent=False)
    _shared.append(embedded)
    embedded.start()
    yield embedded
    embedded.stop()
    _shared.remove(embedded)


@pytest.fixture
def private_servers(tmp_path: Path) -> Iterator[EmbeddedServers]:
    """Servers of this test alone: it may stop, kill and restart them."""
    embedded = EmbeddedServers.create(tmp_path / "servers", persistent=True)
    embedded.start()
    yield embedded
    embedded.stop()


def isolated_settings(embedded: EmbeddedServers, **overrides: Any) -> Settings:
    return settings_for(embedded, **{**TEST_DEFAULTS, **overrides})


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
    """Start `taskiq worker` processes, the stock CLI (or `taskjet worker`'s, with
    `launcher=True`), and wait until they ask for work."""
    started: list[Proc] = []

    async def start(
        *modules: str,
        workers: int = 1,
        extra: tuple[str, ...] = (),
        env_overrides: dict[str, str] | None = None,
        wait: bool = True,
        launcher: bool = False,
    ) -> Proc:
        log = tmp_path / f"worker-{len(started)}.log"
        if settings.worker_concurrency != 100 and "--max-async-tasks" not in extra:
            # As the container entrypoint does: the CLI option and the setting must agree.
            extra = (*extra, "--max-async-tasks", str(settings.worker_concurrency))
        args = worker_args(*modules, workers=workers, extra=extra)
        if launcher:  # `taskjet worker` instead of `taskiq worker`: the same arguments
            args = [sys.executable, "-m", "src.launcher", *args[2:]]
        proc = spawn(
            args,
            {**env, **(env_overrides or {})},
            log,
        )
        started.append(proc)
        if wait:
            layout = Layout.from_settings(settings)
            consumers = [layout.consumer(settings.default_queue, lane) for lane in LANES]

            async def ready() -> bool:
                """Every worker process asks for work (one with room for fewer tasks than
                lanes asks on one lane at a time)."""
                if proc.process.poll() is not None:
                    raise AssertionError(f"worker exited early:\n{proc.output()}")
                pulls = [await waiting_pulls(js, settings.stream, c) for c in consumers]
                return sum(pulls) >= workers

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


# Tests that start servers or processes (or use a temporary folder to do so) are integration
# tests; `make check` runs the others, in seconds.
_INTEGRATION_FIXTURES = frozenset({"servers", "private_servers", "tmp_path"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _shared_pids() -> set[int]:
    return {
        server.process.pid
        for embedded in _shared
        for server in (embedded.nats, embedded.redis)
        if server.process is not None
    }


def _run_temp_root() -> Path | None:
    return _temp_root[0] if _temp_root else None


def _describe(leftovers: list[ProcessInfo]) -> str:
    return "\n".join(f"  pid {p.pid}: {p.command[:200]}" for p in leftovers)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the test's own teardown: what it started must be gone (its error if not)."""
    try:
        yield
    finally:
        leftovers = left_behind(_run_temp_root(), expected=_shared_pids())
        kill_all(leftovers)
    if leftovers:
        raise AssertionError(
            f"{item.nodeid} left processes behind (killed):\n{_describe(leftovers)}"
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture is torn down (also when the run stopped early): nothing is left."""
    leftovers = left_behind(_run_temp_root())
    if leftovers:
        kill_all(leftovers)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "processes left behind (killed)", red=True)
            reporter.write_line(_describe(leftovers))
