"""Real worker, server and entrypoint processes for the tests, and ways to wait on them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nats.js import JetStreamContext

from src.embedded import die_with_parent, group_members, started_at

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_T = TypeVar("_T")

# Every process a test run starts, and everything those start in turn, inherits this mark in its
# environment (conftest sets it, one value per run): how the run finds what it left behind,
# orphans in other sessions included.
RUN_MARK = "SPAWNED_BY_TEST_RUN"


async def eventually(
    probe: Callable[[], Awaitable[_T] | _T],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> _T:
    """Poll `probe` (a coroutine function, or a plain one) until it returns something truthy,
    or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: _T | None = None
    while time.monotonic() < deadline:
        found = probe()
        last = await found if inspect.isawaitable(found) else found
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
        try:
            await eventually(lambda: self.process.poll() is not None, timeout_s, "process exit")
        except AssertionError:
            raise AssertionError(
                f"process still running after {timeout_s}s:\n{self.output()}"
            ) from None
        return self.process.returncode

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM to the process, as a supervisor sends it, and its exit status; then whatever
        is left of its process group (a manager's workers, a killed entrypoint's children) gets
        SIGTERM, and SIGKILL if it does not go in time."""
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(timeout_s)
        finally:
            await self.stop_group()

    async def stop_group(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to every process of the group (spawned in a session of its own), SIGKILL to
        those still there after `timeout_s`."""
        self.process.poll()  # a leader that has exited is reaped, not counted
        if group_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(AssertionError):  # then SIGKILL, below
                await eventually(lambda: not group_members(self.process.pid), timeout_s)
        self.kill()

    def children(self) -> list[_Pid]:
        """Direct child processes (the worker processes of a `taskiq worker` manager)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        return [_Pid(pid) for pid in pids]

    def kill(self) -> None:
        """SIGKILL to the process and every process of its group."""
        if self.process.poll() is None or group_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def spawn(args: list[str], env: dict[str, str], log: Path, *, pipe_stdout: bool = False) -> Proc:
    """`args` in a session of its own, output to `log` (stderr only, with `pipe_stdout`: then
    stdout is a pipe the test reads)."""
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if RUN_MARK in os.environ:
        env[RUN_MARK] = os.environ[RUN_MARK]
    with log.open("ab") as out:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if pipe_stdout else out,
            stderr=out if pipe_stdout else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (tests spawn from the main thread)
        )
    return Proc(process, log)


# What the container entrypoint runs; a test may give `--receiver taskiq.receiver:Receiver`.
RECEIVER = "src.tasks.broker:TaskjetReceiver"


def worker_args(*modules: str, workers: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        str(BIN / "taskiq"),
        "worker",
        "src.tasks.broker:broker",
        *(modules or ("tests.support.tasks",)),
        *(() if "--receiver" in extra else ("--receiver", RECEIVER)),
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

    def alive(self) -> bool:
        """Still running (a zombie its parent has not reaped yet counts as gone)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"


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


@dataclass(frozen=True)
class ProcessInfo:
    """A process as it was seen: its pid, when it started (to tell it from a later process with
    the same pid) and its command line."""

    pid: int
    started: int
    command: str

    @classmethod
    def of(cls, pid: int) -> ProcessInfo | None:
        started = started_at(pid)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return None if started is None else cls(pid, started, command.strip())

    def alive(self) -> bool:
        """Still running (a zombie is not: not every init reaps the orphans it inherits)."""
        return started_at(self.pid) == self.started


def descendants(pid: int) -> list[ProcessInfo]:
    """The live processes under `pid`, children first."""
    found: list[ProcessInfo] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in map(int, children.read_text().split()):
                info = ProcessInfo.of(child)
                if info is not None:
                    found += [info, *descendants(child)]
    return found


def marked_processes(temp_root: Path | None = None) -> list[ProcessInfo]:
    """Every live process that carries this run's mark, or works in `temp_root` (the run's
    temporary directory): all the run started and has not stopped. The second test is for
    redis-server, which writes its process title over its environment."""
    mark = f"{RUN_MARK}={os.environ[RUN_MARK]}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ours = mark in (proc / "environ").read_bytes().split(b"\0") or (
                temp_root is not None and (proc / "cwd").resolve().is_relative_to(temp_root)
            )
        except OSError:  # gone, or not ours
            continue
        info = ProcessInfo.of(int(proc.name)) if ours and int(proc.name) != os.getpid() else None
        if info is not None:
            found.append(info)
    return found


def left_behind(
    temp_root: Path | None = None, expected: Iterable[int] = (), grace_s: float = 5.0
) -> list[ProcessInfo]:
    """The run's processes (see `marked_processes`) other than `expected` pids, once those
    still exiting have had `grace_s` to finish."""
    keep = set(expected)
    deadline = time.monotonic() + grace_s
    while True:
        found = [p for p in marked_processes(temp_root) if p.pid not in keep]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def kill_all(processes: Iterable[ProcessInfo], timeout_s: float = 10.0) -> None:
    """SIGKILL to each process that is still the one that was seen, and wait until they are gone."""
    processes = list(processes)
    for process in processes:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
