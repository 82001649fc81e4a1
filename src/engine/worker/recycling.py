"""Worker recycling: a worker process that has started `TASKJET_MAX_TASKS_PER_CHILD` tasks, or
whose resident memory passed `TASKJET_MAX_MEMORY_PER_CHILD_MB`, stops taking deliveries.

Its listener then ends as on SIGTERM: the fetch loops stop, fetched tasks it has not started are
handed back (nak, so another worker takes them at once), running tasks finish within the
shutdown grace period, and the process exits. taskiq's process manager sees the dead process
(it looks every second) and starts a fresh one in its place. A task is never dropped for it:
whatever this process did not finish is handed back, not acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from src.config import Settings

logger = logging.getLogger("taskjet.recycling")

T = TypeVar("T")
# How often resident memory is read.
MEMORY_CHECK_S = 1.0


def resident_mb() -> float:
    """This process's resident memory now (Linux `/proc`), else its peak so far."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Recycling:
    def __init__(
        self, settings: Callable[[], Settings], memory_mb: Callable[[], float] = resident_mb
    ) -> None:
        self._settings = settings
        self._memory_mb = memory_mb
        self.started = 0
        self.reason: str | None = None
        self._due = asyncio.Event()

    def _recycle(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            logger.warning("recycling this worker process: %s", reason)
            self._due.set()

    async def watch_memory(self) -> None:
        """Check resident memory every `MEMORY_CHECK_S` (when a limit is set)."""
        limit = self._settings().max_memory_per_child_mb
        if not limit:
            return
        while self.reason is None:
            used = self._memory_mb()
            if used >= limit:
                self._recycle(f"{used:.0f} MiB resident, over {limit} MiB")
                return
            await asyncio.sleep(MEMORY_CHECK_S)

    async def until_due(
        self, source: AsyncIterator[T], size: Callable[[T], int] = lambda _: 1
    ) -> AsyncIterator[T]:
        """Items of `source` until recycling is due: the last one after `max_tasks` (each
        item counting as `size(item)` tasks), or none more once memory is over its limit (a
        pending wait for the next one is cancelled)."""
        limit = self._settings().max_tasks_per_child
        due = asyncio.ensure_future(self._due.wait())
        following: asyncio.Future[T] | None = None
        try:
            while self.reason is None:
                following = asyncio.ensure_future(anext(source))
                await asyncio.wait({following, due}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    return  # recycling is due: the wait for the next one is given up below
                try:
                    item = following.result()
                except StopAsyncIteration:
                    return
                following = None
                self.started += size(item)
                if limit and self.started >= limit:
                    self._recycle(f"{self.started} task(s) started (limit {limit})")
                yield item
        finally:
            # Also when the caller is cancelled mid-wait: `source` must not be left running
            # in a task of its own, or the caller could not close it.
            for waiting in (following, due):
                if waiting is not None and not waiting.done():
                    waiting.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await waiting
