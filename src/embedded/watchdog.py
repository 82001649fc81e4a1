"""The watchdog of `taskjet run`: it stops the service and the servers if the launcher dies."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the process that started it dies, even by
    SIGKILL or a crash that skips every cleanup (Linux; elsewhere nothing). Beside the watchdog,
    this covers launchers that have none, such as a test run."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def started_at(pid: int) -> int | None:
    """When a live process started (clock ticks since boot), which tells it from a later one
    that reuses its pid; None when it is gone or a zombie (not every init reaps orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)", comm may hold anything
    return None if fields[0] in "ZX" else int(fields[19])


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in "ZX" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def stop_group(leader: int, timeout_s: float) -> None:
    """SIGTERM to a session leader, which stops its own children in its own order, then SIGKILL
    to whatever is left of its process group after `timeout_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(leader, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while group_members(leader) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGKILL)


class Watchdog:
    """A process that stops the launcher's children if the launcher dies, even by SIGKILL.

    The launcher tells it each child (a session leader) and how long that child may take to
    stop, over a pipe. When the pipe closes, because the launcher exited or was killed, the
    watchdog stops the children still alive, the last registered first: the service before the
    servers it needs. In its own session, so the terminal's Ctrl-C or hangup reaches only the
    launcher, which stops everything itself and then closes the pipe.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "src.embedded"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    def register(self, pid: int, timeout_s: float) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):  # without a watchdog the service still runs
            self.process.stdin.write(f"{pid} {timeout_s}\n".encode())
            self.process.stdin.flush()

    def close(self, timeout_s: float = 10.0) -> None:
        """Once everything is stopped: the watchdog finds nothing left to do and exits."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def watch(registrations: Iterable[bytes]) -> None:
    """The watchdog's work: read `pid timeout_s` lines until the launcher's end closes, then
    stop each registered process that is still the same process, the last registered first."""
    children: list[tuple[int, float, int | None]] = []
    for line in registrations:
        pid_text, timeout_text = line.split()
        children.append((int(pid_text), float(timeout_text), started_at(int(pid_text))))
    for pid, timeout_s, started in reversed(children):
        if started is not None and started_at(pid) == started:
            stop_group(pid, timeout_s)
