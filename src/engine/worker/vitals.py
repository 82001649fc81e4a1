"""How a worker process is doing, as it reports itself: tasks processed and failed since it
started, mean run time over the last five minutes, memory, event-loop lag, round trips to NATS
and Redis; and its liveness heartbeat file.

The heartbeat file (`TASKJET_WORKER_HEARTBEAT_DIR/<pid>`) is touched by the event loop only
while the lease loop beats, so Kubernetes' liveness probe (`taskjet alive`) restarts a worker
whose loop or lease heartbeat is stuck, and never one that merely cannot reach NATS or Redis
(an outage of those would otherwise restart every worker at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

logger = logging.getLogger("taskjet.worker")

WINDOW_S = 300.0  # the mean run time covers this many seconds
_TICK_S = 0.5
PROBE_TIMEOUT_S = 5.0  # a round trip slower than this counts as no answer


class Vitals:
    """Counts this process's runs and measures its loop; one per worker process."""

    def __init__(self) -> None:
        self.processed = 0
        self.failed = 0
        self.loop_lag_s = 0.0
        self.nats_rtt_s: float | None = None
        self.redis_rtt_s: float | None = None
        self._runs: deque[tuple[float, float]] = deque()

    def observe(self, run_s: float, failed: bool) -> None:
        """A run ended (a retried attempt counts as a failed run)."""
        self.processed += 1
        self.failed += failed
        self._runs.append((time.monotonic(), run_s))

    def mean_run_s(self) -> float | None:
        """Mean run time of the runs that ended in the last five minutes."""
        horizon = time.monotonic() - WINDOW_S
        while self._runs and self._runs[0][0] < horizon:
            self._runs.popleft()
        if not self._runs:
            return None
        return round(sum(r for _, r in self._runs) / len(self._runs), 6)

    async def measure_round_trips(
        self, nats: Callable[[], Awaitable[object]], redis: Callable[[], Awaitable[object]]
    ) -> None:
        """Time one NATS PING and one Redis PING (None when it failed)."""
        self.nats_rtt_s = await _timed(nats)
        self.redis_rtt_s = await _timed(redis)
        for name, rtt in (("NATS", self.nats_rtt_s), ("Redis", self.redis_rtt_s)):
            if rtt is None:
                logger.warning("%s round trip: no answer within %.0f s", name, PROBE_TIMEOUT_S)

    async def watch_loop(self, beating: Callable[[], bool], heartbeat_dir: str) -> None:
        """Measure how late the loop wakes up; touch the heartbeat file while `beating()`."""
        target = Path(heartbeat_dir) / str(os.getpid()) if heartbeat_dir else None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        try:
            while True:
                start = time.monotonic()
                await asyncio.sleep(_TICK_S)
                self.loop_lag_s = round(max(0.0, time.monotonic() - start - _TICK_S), 6)
                if target is not None and beating():
                    target.touch()
        finally:
            if target is not None:
                with contextlib.suppress(OSError):
                    target.unlink()


def rss_bytes() -> int:
    """Resident memory of this process (Linux: now; elsewhere: the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return pages * os.sysconf("SC_PAGE_SIZE")


async def _timed(call: Callable[[], Awaitable[object]]) -> float | None:
    start = time.monotonic()
    try:
        await asyncio.wait_for(call(), PROBE_TIMEOUT_S)
    except Exception:
        return None
    return round(time.monotonic() - start, 6)


def stale_heartbeats(heartbeat_dir: str, max_age_s: float, now: float | None = None) -> list[str]:
    """What is wrong with the heartbeats of the worker processes in this container: each file
    of a running process must be younger than `max_age_s`, and at least one must exist."""
    now = time.time() if now is None else now
    folder = Path(heartbeat_dir)
    files = sorted(folder.glob("*")) if folder.is_dir() else []
    problems: list[str] = []
    alive = 0
    for file in files:
        if not file.name.isdigit() or not _running(int(file.name)):
            continue  # left by a process that is gone: its replacement writes its own
        alive += 1
        try:
            age = now - file.stat().st_mtime
        except OSError:
            continue
        if age > max_age_s:
            problems.append(f"worker process {file.name}: no heartbeat for {age:.0f}s")
    if not alive:
        problems.append(f"no worker process heartbeat in {heartbeat_dir}")
    return problems


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
