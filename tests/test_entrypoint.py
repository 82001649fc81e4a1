"""docker-entrypoint.sh: RUN_MODE server, worker and both start, serve and stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.embedded import free_port, group_members
from src.engine.broker import JetStreamBroker
from src.engine.core.layout import Layout
from tests.conftest import SUBMIT_KEY, StartWorker
from tests.support import tasks
from tests.support.processes import (
    ROOT,
    Proc,
    descendants,
    eventually,
    spawn,
    wait_healthy,
    waiting_pulls,
)

ENTRYPOINT = str(ROOT / "docker-entrypoint.sh")


def _start(env: dict[str, str], tmp_path: Path, mode: str, **extra: str) -> tuple[Proc, str]:
    port = free_port()
    child_env = {
        **env,
        "RUN_MODE": mode,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHON": sys.executable,
        "TASKJET_WORKER_MODULES": "src.tasks.example tests.support.tasks",
        **extra,
    }
    return spawn(
        [ENTRYPOINT], child_env, tmp_path / f"entrypoint-{mode}.log"
    ), f"http://127.0.0.1:{port}"


async def _healthy(proc: Proc, base: str) -> None:
    await wait_healthy(proc, base)


async def _worker_ready(proc: Proc, js: JetStreamContext, settings: Settings) -> None:
    consumer = Layout.from_settings(settings).consumer(settings.default_queue)

    async def probe() -> bool:
        if proc.process.poll() is not None:
            raise AssertionError(f"exited early:\n{proc.output()}")
        return await waiting_pulls(js, settings.stream, consumer) > 0

    await eventually(probe, timeout_s=60, what="worker ready")


async def _group_gone(proc: Proc) -> bool:
    """No process of the entrypoint's process group is left."""
    proc.process.poll()
    return not group_members(proc.process.pid)


async def test_server_mode(env: dict[str, str], tmp_path: Path) -> None:
    proc, base = _start(env, tmp_path, "server")
    try:
        await _healthy(proc, base)
        # uvicorn finishes its shutdown, then re-raises the SIGTERM it caught.
        assert await proc.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in proc.output()
        await eventually(lambda: _group_gone(proc), what="all processes gone")
    finally:
        proc.kill()


async def test_worker_mode(
    env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
    js: JetStreamContext,
    broker: JetStreamBroker,
) -> None:
    proc, _ = _start(env, tmp_path, "worker", TASKJET_WORKER_PROCESSES="2")
    try:
        await _worker_ready(proc, js, settings)
        result = await (await tasks.echo.kiq("via entrypoint")).wait_result(timeout=30)
        assert result.return_value == "via entrypoint"
        assert await proc.stop() == 0
        await eventually(lambda: _group_gone(proc), what="all processes gone")
    finally:
        proc.kill()


async def test_both_mode_with_json_logs_writes_only_json_lines(
    env: dict[str, str], settings: Settings, tmp_path: Path, js: JetStreamContext
) -> None:
    proc, base = _start(env, tmp_path, "both", TASKJET_LOG_FORMAT="json")
    try:
        await _healthy(proc, base)
        await _worker_ready(proc, js, settings)
        assert await proc.stop() == 0
    finally:
        proc.kill()
    lines = [line for line in proc.output().splitlines() if line.strip()]
    parsed = [orjson.loads(line) for line in lines]  # every line, of every process
    assert all({"time", "level", "logger", "message"} <= p.keys() for p in parsed)
    said = {(p["logger"], p["message"].split(" (")[0]) for p in parsed}
    assert ("docker-entrypoint.sh", "stopping worker") in said  # this script's own
    assert ("uvicorn.error", "Application startup complete.") in said  # the server's
    assert ("taskjet.launcher", "starting 1 worker process(es)") in said  # the worker's manager
    assert any(logger == "taskiq.worker" and m.startswith("Importing tasks") for logger, m in said)


@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=60.0, shutdown_grace_s=120)
async def test_second_sigterm_cancels_running_tasks_and_hands_them_back(
    env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
    js: JetStreamContext,
    broker: JetStreamBroker,
    start_worker: StartWorker,
) -> None:
    proc, _ = _start(env, tmp_path, "worker")
    try:
        await _worker_ready(proc, js, settings)
        key = uuid.uuid4().hex
        handle = await tasks.stubborn.kiq(key)

        async def running() -> bool:
            return await broker.results.redis.get(f"test-count:{key}") == b"1"

        await eventually(running, what="first run under way")
        proc.signal(signal.SIGTERM)
        await eventually(lambda: _said(proc, "Waiting for 1 running tasks"), what="worker draining")
        # The grace period is 120 s: only the second signal can end the worker this soon.
        proc.signal(signal.SIGTERM)
        await proc.wait(30)
        assert not await broker.results.is_result_ready(handle.task_id)
    finally:
        proc.kill()
    await start_worker()
    result = await handle.wait_result(timeout=30)  # well inside ack_wait (60 s)
    assert result.return_value == 2, "the cancelled task ran again on the next worker"


async def _said(proc: Proc, text: str) -> bool:
    return text in proc.output()


async def test_both_mode_serves_the_whole_workflow(env: dict[str, str], tmp_path: Path) -> None:
    proc, base = _start(env, tmp_path, "both")
    try:
        await _healthy(proc, base)
        auth = {"Authorization": f"Bearer {SUBMIT_KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            accepted = await client.post("/process", json={"data": {"via": "both"}})
            assert accepted.status_code == 202
            task_id = accepted.json()["task_id"]

            async def done() -> dict[str, object] | None:
                status = (await client.get(f"/api/v1/tasks/{task_id}")).json()
                return status if status["state"] == "SUCCESS" else None

            status = await eventually(done, what="task done")
            assert status["result"] == {"keys": ["via"], "size": 1, "echo": {"via": "both"}}
        assert await proc.stop() == 0
        await eventually(lambda: _group_gone(proc), what="server and worker both gone")
    finally:
        proc.kill()


@pytest.mark.settings(ack_wait_s=60.0, shutdown_grace_s=120)
async def test_both_mode_stops_the_worker_first_while_the_api_answers(
    env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
    js: JetStreamContext,
    broker: JetStreamBroker,
) -> None:
    proc, base = _start(env, tmp_path, "both")
    try:
        await _healthy(proc, base)
        await _worker_ready(proc, js, settings)
        key = uuid.uuid4().hex
        await tasks.stubborn.kiq(key)

        async def running() -> bool:
            return await broker.results.redis.get(f"test-count:{key}") == b"1"

        await eventually(running, what="a task under way")
        proc.signal(signal.SIGTERM)
        await eventually(lambda: _said(proc, "Waiting for 1 running tasks"), what="worker draining")
        # The worker has 120 s to wait for its task: meanwhile the API is untouched.
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/health")).status_code == 200
        assert "Waiting for application shutdown" not in proc.output()
        proc.signal(signal.SIGTERM)  # the task is handed back, the worker exits, then the API
        assert await proc.wait(60) == 0
        log = proc.output()
        assert (
            log.index("stopping worker")
            < log.index("Waiting for 1 running tasks")
            < log.index("stopping server")
            < log.index("Waiting for application shutdown")
        )
        await eventually(lambda: _group_gone(proc), what="server and worker both gone")
    finally:
        proc.kill()


@pytest.mark.faults
async def test_both_mode_roles_stop_when_the_entrypoint_is_killed(
    env: dict[str, str], settings: Settings, tmp_path: Path, js: JetStreamContext
) -> None:
    proc, base = _start(env, tmp_path, "both")
    try:
        await _healthy(proc, base)
        await _worker_ready(proc, js, settings)
        roles = descendants(proc.process.pid)
        commands = " ".join(p.command for p in roles)
        assert "-m uvicorn" in commands
        assert "-m src.launcher" in commands
        proc.signal(signal.SIGKILL)

        async def roles_gone() -> bool:
            return not [p for p in roles if p.alive()]

        await eventually(roles_gone, timeout_s=60, what="server and worker stopped by themselves")
    finally:
        proc.kill()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.faults
async def test_both_mode_stops_the_server_when_the_worker_dies(
    env: dict[str, str], settings: Settings, tmp_path: Path, js: JetStreamContext
) -> None:
    proc, base = _start(env, tmp_path, "both")
    try:
        await _healthy(proc, base)
        await _worker_ready(proc, js, settings)
        commands = {
            pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _children(proc.process.pid)
        }
        worker_pid = next(pid for pid, cmd in commands.items() if b"src.launcher" in cmd)
        os.kill(worker_pid, signal.SIGKILL)
        assert await proc.wait(30) != 0
        await eventually(lambda: _group_gone(proc), what="server stopped too")
    finally:
        proc.kill()


async def test_unknown_run_mode(env: dict[str, str], tmp_path: Path) -> None:
    proc, _ = _start(env, tmp_path, "sideways")
    assert await proc.wait(30) == 64
    assert "unknown RUN_MODE 'sideways'" in proc.output()


@pytest.mark.parametrize("mode", ["server", "both"])
async def test_server_without_api_keys_refuses_to_start(
    env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    without = {k: v for k, v in env.items() if k != "TASKJET_API_KEYS"}
    proc, _ = _start(without, tmp_path, mode)
    assert await proc.wait(30) == 2
    assert "no API keys configured" in proc.output()
    assert "TASKJET_AUTH=disabled" in proc.output()


async def test_server_with_auth_disabled_serves_without_keys(
    env: dict[str, str], tmp_path: Path
) -> None:
    without = {k: v for k, v in env.items() if k != "TASKJET_API_KEYS"}
    proc, base = _start({**without, "TASKJET_AUTH": "disabled"}, tmp_path, "server")
    try:
        await _healthy(proc, base)
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/api/v1/tasks")).status_code == 200
    finally:
        await proc.stop()


@pytest.mark.parametrize("mode", ["server", "worker", "both"])
async def test_unreachable_nats_fails_fast(env: dict[str, str], tmp_path: Path, mode: str) -> None:
    closed = free_port()
    proc, _ = _start({**env, "NATS_URL": f"nats://127.0.0.1:{closed}"}, tmp_path, mode)
    assert await proc.wait(30) == 2
    assert f"cannot connect to NATS at nats://127.0.0.1:{closed}" in proc.output()


async def test_malformed_url_fails_fast(env: dict[str, str], tmp_path: Path) -> None:
    proc, _ = _start({**env, "REDIS_URL": "redis-host:16399"}, tmp_path, "worker")
    assert await proc.wait(30) == 2
    assert "REDIS_URL 'redis-host:16399' must start with one of" in proc.output()


async def test_unreachable_redis_fails_fast(env: dict[str, str], tmp_path: Path) -> None:
    closed = free_port()
    proc, _ = _start({**env, "REDIS_URL": f"redis://127.0.0.1:{closed}/0"}, tmp_path, "server")
    assert await proc.wait(30) == 2
    assert f"cannot reach Redis at redis://127.0.0.1:{closed}/0" in proc.output()
