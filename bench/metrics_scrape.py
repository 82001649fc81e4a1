"""How long one `/metrics` scrape and one day of `/api/v1/stats` take with many task names.

    python -m bench.metrics_scrape [--tasks 1000] [--runs 50]

Starts private NATS and Redis servers, records one succeeded, one retried and one failed run
for each of `--tasks` task names through the record script (so the counters look as they do
in production), then times the scrape (read JetStream and Redis, render the text format) and a
24-hour stats read at one-minute steps. Figures only: the goal is a scrape under 50 ms with
1,000 task names.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from src.api.metrics import scrape
from src.config import load_settings
from src.embedded import EmbeddedServers
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.state.transitions import Transition


async def _fill(broker: JetStreamBroker, names: int) -> None:
    now = time.time()
    batch: list[Transition] = []
    for i in range(names):
        name = f"bench.tasks:task_{i:04d}"
        for state in (TaskState.SUCCESS, TaskState.RETRYING, TaskState.FAILURE):
            task_id = uuid.uuid4().hex
            queued = {"queue": "default", "queued_at": now - 1.0}
            batch.append(Transition(task_id, name, TaskState.PENDING, "create", queued))
            started = {"started_at": now - 0.5}
            batch.append(Transition(task_id, name, TaskState.STARTED, "start", started, attempt=1))
            ended = {"finished_at": now, "runtime_s": 0.01 * (i % 50)}
            mode = "advance" if state is TaskState.RETRYING else "final"
            batch.append(Transition(task_id, name, state, mode, ended, attempt=1))
        if len(batch) >= 3000:
            await broker.records.apply(batch)
            batch = []
    await broker.records.apply(batch)


async def _time(call: Callable[[], Awaitable[object]], runs: int) -> tuple[list[float], float]:
    """Wall times (ms) of `runs` calls, and the median CPU time this process spent on one
    (less sensitive to a busy machine than the wall time)."""
    await call()  # warm: connections, script cache
    taken, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        await call()
        taken.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return taken, statistics.median(cpu)


def _line(what: str, timed: tuple[list[float], float]) -> str:
    taken, cpu = timed
    ordered = sorted(taken)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return (
        f"{what:<30} median {statistics.median(taken):6.1f} ms   p95 {p95:6.1f} ms   "
        f"CPU here {cpu:6.1f} ms"
    )


async def main(names: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        servers = EmbeddedServers.create(Path(folder), persistent=False)
        servers.start()
        try:
            settings = load_settings(
                nats_url=servers.nats.url, redis_url=servers.redis.url, scheduler=False
            )
            broker = JetStreamBroker(settings)
            await broker.startup()
            try:
                await _fill(broker, names)
                body = await scrape(broker)
                print(f"{names} task names: a scrape is {len(body) / 1024:.0f} KiB")
                print(
                    _line("GET /metrics (read + render)", await _time(lambda: scrape(broker), runs))
                )
                day = int(time.time()) - 86_400

                async def stats() -> object:
                    return await broker.stats.series(day, 60)

                print(_line("stats, 24 h at 60 s steps", await _time(stats, max(5, runs // 5))))
            finally:
                await broker.shutdown()
        finally:
            servers.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="task names")
    parser.add_argument("--runs", type=int, default=50, help="timed scrapes")
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.runs))
