"""Child processes (workers, API server), their process trees and resident memory from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc/<pid>/task/<tid>/children)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if not Path(f"/proc/{current}").exists():
            continue
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(p) for p in (task / "children").read_text().split())
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the process tree (the processes alive now)."""
    return sum(cpu_seconds(p) for p in tree(pid))


def tree_rss(pid: int) -> tuple[int, list[int]]:
    """Sum of RSS over the process tree, and each process's RSS (root first)."""
    sizes = [rss_bytes(p) for p in tree(pid)]
    return sum(sizes), sizes


@dataclass
class Proc:
    """A child process in its own session, output to a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0, *, group: bool = False) -> None:
        """SIGTERM (to the whole process group with `group`, as Ctrl-C in a terminal reaches
        every process), then SIGKILL to the whole group (its own session) if it lingers."""
        if self.process.poll() is None:
            if group:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> Proc:
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(name, process, log)


@dataclass
class RssSampler:
    """Samples the summed RSS of some process trees in a thread; peaks per measuring window."""

    interval_s: float = 0.025
    _roots: dict[str, int] = field(default_factory=dict)
    _peaks: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._roots[name] = pid
            self._peaks[name] = 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
            self._thread.start()

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._roots.pop(name, None)

    def reset(self, name: str) -> None:
        with self._lock:
            self._peaks[name] = 0

    def peak(self, name: str) -> int:
        with self._lock:
            pid = self._roots.get(name)
        now = tree_rss(pid)[0] if pid else 0
        with self._lock:
            return max(self._peaks.get(name, 0), now)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                roots = dict(self._roots)
            sizes = {name: tree_rss(pid)[0] for name, pid in roots.items()}
            with self._lock:
                for name, size in sizes.items():
                    if size > self._peaks.get(name, 0):
                        self._peaks[name] = size
