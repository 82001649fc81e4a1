"""`taskjet check` and `taskjet run` (the embedded default), as a user runs them."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx

from src.embedded import free_port, port_is_free
from tests.support.processes import Proc, eventually, spawn, wait_healthy

PYTHON = sys.executable


async def test_check_ok(env: dict[str, str], tmp_path: Path) -> None:
    proc = spawn([PYTHON, "-m", "src", "check"], env, tmp_path / "check.log")
    assert await proc.wait(30) == 0
    assert "ok: NATS and Redis reachable" in proc.output()


async def test_check_reports_bad_config(env: dict[str, str], tmp_path: Path) -> None:
    proc = spawn(
        [PYTHON, "-m", "src", "check"], {**env, "TASKJET_RESULT_TTL_S": "-5"}, tmp_path / "c.log"
    )
    assert await proc.wait(30) == 2
    assert "error: invalid taskjet configuration: result_ttl_s" in proc.output()


async def _run(tmp_path: Path, data_dir: Path, ports: dict[str, int], name: str) -> Proc:
    args = [
        PYTHON, "-m", "src", "run",
        "--data-dir", str(data_dir),
        "--port", str(ports["http"]),
        "--nats-port", str(ports["nats"]),
        "--redis-port", str(ports["redis"]),
    ]  # fmt: skip
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKJET_")}
    return spawn(args, env, tmp_path / f"{name}.log")


async def _wait_healthy(proc: Proc, base: str) -> None:
    await wait_healthy(proc, base, "embedded service healthy")


async def test_run_embedded_default_and_data_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {"http": free_port(), "nats": free_port(), "redis": free_port()}
    base = f"http://127.0.0.1:{ports['http']}"

    first = await _run(tmp_path, data_dir, ports, "run-1")
    try:
        await _wait_healthy(first, base)
        output = first.output()
        assert f"API     {base}" in output
        assert f"NATS    nats://127.0.0.1:{ports['nats']}" in output
        key = (data_dir / "api-key").read_text().strip()
        assert f"API key {key}" in output, "the generated key is printed"
        assert (data_dir / "api-key").stat().st_mode & 0o077 == 0, "the key file is private"
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/process", json={"data": {}})).status_code == 401
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            task_id = (await client.post("/process", json={"data": {"keep": 1}})).json()["task_id"]

            async def done() -> bool:
                state = (await client.get(f"/api/v1/tasks/{task_id}")).json()["state"]
                return state == "SUCCESS"

            await eventually(done, what="task done")
        first.signal(signal.SIGINT)  # what Ctrl-C sends
        assert await first.wait(60) == 0
    finally:
        first.kill()
    assert all(port_is_free(port) for port in ports.values()), "servers stopped with the service"

    second = await _run(tmp_path, data_dir, ports, "run-2")
    try:
        await _wait_healthy(second, base)
        assert (data_dir / "api-key").read_text().strip() == key, "the same key after restart"
        async with httpx.AsyncClient(base_url=base, headers=auth) as client:
            status = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        assert status["state"] == "SUCCESS"
        assert status["result"]["echo"] == {"keep": 1}
        assert await second.stop(60) == 0
    finally:
        second.kill()


async def test_run_uses_a_free_port_when_the_preferred_one_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = {"http": free_port(), "nats": taken, "redis": free_port()}
        proc = await _run(tmp_path, tmp_path / "data", ports, "run")
        try:
            base = f"http://127.0.0.1:{ports['http']}"
            await _wait_healthy(proc, base)
            assert f"nats://127.0.0.1:{taken}" not in proc.output()
            assert await proc.stop(60) == 0
        finally:
            proc.kill()


async def test_dlq_commands(
    env: dict[str, str], tmp_path: Path, broker: object, start_worker: object
) -> None:
    from src.tasks.jetstream import JetStreamBroker
    from tests.support import tasks

    assert isinstance(broker, JetStreamBroker)
    await start_worker()  # type: ignore[operator]
    handle = await tasks.wrong_kind_of_failure.kiq("cli")
    await handle.wait_result(timeout=30)

    async def dead() -> bool:
        return await broker.dlq.count() == 1

    await eventually(dead, what="dead letter")

    async def cli(*args: str) -> tuple[int, str]:
        log = tmp_path / f"dlq-{len(list(tmp_path.glob('dlq-*.log')))}.log"
        proc = spawn([PYTHON, "-m", "src", "dlq", *args], env, log)
        code = await proc.wait(30)
        return code, proc.output()

    code, out = await cli("list")
    assert code == 0
    assert "failed" in out
    assert "1 shown, 1 in the dead-letter queue" in out
    code, out = await cli("list", "--json")
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert entry["task_id"] == handle.task_id
    assert entry["task_name"] == "tests.support.tasks:wrong_kind_of_failure"
    assert entry["error_message"] == "not a connection problem: no retry"

    code, out = await cli("requeue")
    assert code == 2
    assert "say which: --id ID, --task NAME or --all" in out

    code, out = await cli("requeue", "--id", handle.task_id)
    assert (code, out.strip().splitlines()[-1]) == (0, "requeued 1 task(s)")
    await eventually(dead, what="it failed again")

    code, out = await cli("purge")
    assert code == 2
    assert "add --yes" in out
    code, out = await cli("purge", "--yes")
    assert (code, out.strip().splitlines()[-1]) == (0, "purged 1 dead letter(s)")
    assert await broker.dlq.count() == 0
