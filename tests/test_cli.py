"""`taskjet check` and `taskjet run` (the embedded default), as a user runs them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import nats
import pytest

from src.embedded import free_port, port_is_free
from tests.support.processes import (
    Proc,
    ProcessInfo,
    descendants,
    eventually,
    spawn,
    wait_healthy,
)

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


async def _run(
    tmp_path: Path,
    data_dir: Path,
    ports: dict[str, int],
    name: str,
    *,
    pipe_stdout: bool = False,
    extra: tuple[str, ...] = (),
) -> Proc:
    args = [
        PYTHON, "-m", "src", "run",
        "--data-dir", str(data_dir),
        "--port", str(ports["http"]),
        "--nats-port", str(ports["nats"]),
        "--redis-port", str(ports["redis"]),
        *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKJET_")}
    return spawn(args, env, tmp_path / f"{name}.log", pipe_stdout=pipe_stdout)


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


async def test_run_cluster_starts_three_nodes_with_replicated_streams(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {"http": free_port(), "nats": free_port(), "redis": free_port()}
    base = f"http://127.0.0.1:{ports['http']}"
    proc = await _run(tmp_path, data_dir, ports, "cluster", extra=("--cluster",))
    try:
        await _wait_healthy(proc, base)
        key = (data_dir / "api-key").read_text().strip()
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as c:
            task_id = (await c.post("/process", json={"data": {"n": 1}})).json()["task_id"]

            async def done() -> bool:
                return (await c.get(f"/api/v1/tasks/{task_id}")).json()["state"] == "SUCCESS"

            await eventually(done, what="task done on the cluster")
        client = await nats.connect(f"nats://127.0.0.1:{ports['nats']}")
        try:
            info = await client.jetstream().stream_info("TASKJET")
        finally:
            await client.close()
        assert info.config.num_replicas == 3
        assert info.cluster is not None
        assert info.cluster.leader
        assert len(info.cluster.replicas or []) == 2, "a leader and two replicas"
        proc.signal(signal.SIGINT)
        assert await proc.wait(60) == 0
    finally:
        proc.kill()
    assert all(port_is_free(port) for port in ports.values()), "servers stopped with the service"


# What `taskjet run` starts, known by pieces of command lines: all of it must stop with it.
EVERY_PART = {
    "watchdog": ("-m src.embedded",),
    "nats-server": ("nats-server",),
    "redis-server": ("redis-server", "valkey"),
    "entrypoint": ("docker-entrypoint.sh",),
    "uvicorn": ("-m uvicorn",),
    "worker manager and worker": ("-m src.launcher",),
}


async def _whole_tree(launcher: Proc) -> list[ProcessInfo]:
    """Everything under the launcher, once every part is up (a worker process as well as its
    manager)."""

    async def complete() -> list[ProcessInfo] | None:
        tree = descendants(launcher.process.pid)
        counts = {
            part: sum(any(piece in p.command for piece in pieces) for p in tree)
            for part, pieces in EVERY_PART.items()
        }
        return tree if all(counts.values()) and counts["worker manager and worker"] >= 2 else None

    return await eventually(complete, timeout_s=60, what="every part of taskjet run started")


async def _read_until(proc: Proc, text: str) -> str:
    """What the process wrote to its stdout pipe, up to and including `text`."""
    assert proc.process.stdout is not None
    fd = proc.process.stdout.fileno()
    os.set_blocking(fd, False)
    seen = b""

    async def probe() -> bool:
        nonlocal seen
        if proc.process.poll() is not None:
            raise AssertionError(f"exited early:\n{seen.decode()}\n{proc.output()}")
        with contextlib.suppress(BlockingIOError):
            seen += os.read(fd, 65536)
        return text.encode() in seen

    await eventually(probe, timeout_s=60, what=f"{text!r} on stdout")
    return seen.decode()


def _running(tree: list[ProcessInfo]) -> list[ProcessInfo]:
    return [p for p in tree if p.alive()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hangup"])
async def test_ctrl_c_with_output_piped_stops_everything(tmp_path: Path, sig: int) -> None:
    """`taskjet run | tee run.log`, then Ctrl-C (or the terminal closes): the terminal signals
    the launcher's process group, and the reader of its output is gone by the time it says
    anything more."""
    ports = {"http": free_port(), "nats": free_port(), "redis": free_port()}
    base = f"http://127.0.0.1:{ports['http']}"
    launcher = await _run(tmp_path, tmp_path / "data", ports, "run", pipe_stdout=True)
    assert launcher.process.stdout is not None
    try:
        assert f"API     {base}" in await _read_until(launcher, "Press Ctrl-C to stop.")
        await _wait_healthy(launcher, base)
        tree = await _whole_tree(launcher)
        launcher.process.stdout.close()  # `tee` dies of the same signal
        os.killpg(launcher.process.pid, sig)
        assert await launcher.wait(90) == 0
        assert _running(tree) == [], "the launcher waits for everything it started"
        assert all(port_is_free(port) for port in ports.values())
        assert "stopping the worker, the API, then NATS and Redis" in launcher.output()
    finally:
        launcher.process.stdout.close()
        launcher.kill()


async def test_killed_launcher_takes_everything_with_it(tmp_path: Path) -> None:
    """SIGKILL leaves the launcher no last word: its watchdog stops the service, then the
    servers."""
    ports = {"http": free_port(), "nats": free_port(), "redis": free_port()}
    base = f"http://127.0.0.1:{ports['http']}"
    launcher = await _run(tmp_path, tmp_path / "data", ports, "run")
    try:
        await _wait_healthy(launcher, base)
        tree = await _whole_tree(launcher)
        launcher.signal(signal.SIGKILL)
        assert await launcher.wait(30) == -signal.SIGKILL

        async def all_gone() -> bool:
            return not _running(tree)

        await eventually(all_gone, timeout_s=90, what=f"all of {_running(tree)} gone")
        assert all(port_is_free(port) for port in ports.values())
        log = launcher.output()
        assert log.index("stopping worker") < log.index("stopping server"), "in order"
    finally:
        launcher.kill()


def test_a_free_port_is_picked_below_the_ports_outgoing_connections_get() -> None:
    """A port the kernel may hand to any client's connection could be taken before the server
    binds it: a test once lost a Redis node that way."""
    top = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(port < top and port_is_free(port) for port in ports)


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
    from src.engine.broker import JetStreamBroker
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
