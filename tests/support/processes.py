"""Real worker, server and entrypoint processes for the tests, and ways to wait on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nats.js import JetStreamContext

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_T = TypeVar("_T")


async def eventually(
    probe: Callable[[], Awaitable[_T]],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> _T:
    """Poll `probe` until it returns something truthy, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: _T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s}s (last: {last!r})")


@dataclass
class Proc:
    """A child process whose output goes to a log file the test can show on failure."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    async def wait(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"process still running after {timeout_s}s:\n{self.output()}")
            await asyncio.sleep(0.05)
        return self.process.returncode

    async def stop(self, timeout_s: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(timeout_s)
        finally:
            self.kill()

    def children(self) -> list[_Pid]:
        """Direct child processes (the worker processes of a `taskiq worker` manager)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        return [_Pid(pid) for pid in pids]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def spawn(args: list[str], env: dict[str, str], log: Path) -> Proc:
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(process, log)


def worker_args(*modules: str, workers: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        str(BIN / "taskiq"),
        "worker",
        "src.tasks.broker:broker",
        *(modules or ("tests.support.tasks",)),
        "--workers",
        str(workers),
        *extra,
    ]


async def waiting_pulls(js: JetStreamContext, stream: str, consumer: str) -> int:
    """Pull requests waiting on the consumer: a worker is up and asking for work."""
    try:
        info = await js.consumer_info(stream, consumer)
    except Exception:
        return 0
    return int(info.num_waiting or 0)


class _Pid:
    """A process that is not our child: enough to kill it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


async def wait_healthy(proc: Proc, base: str, what: str = "server healthy") -> None:
    """Until `GET {base}/health` answers 200; fails at once if the process exits."""
    import httpx

    async def probe() -> bool:
        if proc.process.poll() is not None:
            raise AssertionError(f"exited early:\n{proc.output()}")
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{base}/health")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(probe, timeout_s=60, what=what)


def spawn_server(env: dict[str, str], log: Path) -> tuple[Proc, str]:
    """The API under uvicorn in its own process, on a free port; returns it and its URL."""
    import sys

    from src.embedded import free_port

    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "src.api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    return spawn(args, env, log), f"http://127.0.0.1:{port}"
