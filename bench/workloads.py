"""The four workloads, as plain functions every system wraps in its own task decorator.

Async systems (taskjet, taskiq-nats, taskiq-redis) run the `async def` versions; the sync-only
peers (Celery, Dramatiq) run the `def` versions, where waiting is `time.sleep`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# About 2 ms of pure-Python arithmetic on the reference machine (see bench/README.md).
CPU_LOOPS = 30_000


def burn(loops: int = CPU_LOOPS) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    # The task gets this one positional argument (kept tiny: the figures are about overhead).
    arg: float | int | None = None


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("noop", "returns at once: pure queue + result overhead"),
        Workload("io1ms", "1 ms of I/O: asyncio.sleep(0.001), sync peers time.sleep", 0.001),
        Workload("sleep100", "sleeps 100 ms: how many tasks run at once (concurrency)", 0.1),
        Workload("cpu", f"~2 ms of pure-Python arithmetic ({CPU_LOOPS:,} loop steps)", CPU_LOOPS),
    )
}


# Async implementations ------------------------------------------------------------------
async def noop_async(_: object = None) -> int:
    return 1


async def io_async(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 1


async def cpu_async(loops: int) -> int:
    return burn(int(loops))


ASYNC_FUNCS: dict[str, Callable[..., Awaitable[int]]] = {
    "noop": noop_async,
    "io1ms": io_async,
    "sleep100": io_async,
    "cpu": cpu_async,
}


# Sync implementations (Celery, Dramatiq) ------------------------------------------------
def noop_sync(_: object = None) -> int:
    return 1


def io_sync(seconds: float) -> int:
    time.sleep(seconds)
    return 1


def cpu_sync(loops: int) -> int:
    return burn(int(loops))


SYNC_FUNCS: dict[str, Callable[..., int]] = {
    "noop": noop_sync,
    "io1ms": io_sync,
    "sleep100": io_sync,
    "cpu": cpu_sync,
}

# The task each workload runs (sleep100 and io1ms share one with a different argument).
TASK_FOR_WORKLOAD = {"noop": "noop", "io1ms": "io", "sleep100": "io", "cpu": "cpu"}


def expected_result(workload: Workload) -> int:
    return burn(int(workload.arg or 0)) if workload.name == "cpu" else 1
