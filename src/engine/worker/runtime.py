"""A worker process's background loops, started once it is connected: lease extension, its
report to the registry, queue pauses, recycling by memory and its vitals (liveness file).

Kept out of the broker, which only wires: this is what makes a connected process a worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS

from src.config import Settings
from src.engine.backends.nats import flush
from src.engine.core.aio import cancel_all
from src.engine.core.layout import Layout
from src.engine.worker.fetcher import Fetching
from src.engine.worker.inflight import InFlight
from src.engine.worker.leases import Leases
from src.engine.worker.queue_gate import QueueGate
from src.engine.worker.recycling import Recycling
from src.engine.worker.registry import WorkerRegistry
from src.engine.worker.throttle import Throttle
from src.engine.worker.vitals import PROBE_TIMEOUT_S

logger = logging.getLogger(__name__)


class WorkerRuntime:
    def __init__(
        self,
        *,
        inflight: InFlight,
        throttle: Throttle,
        gate: QueueGate,
        recycling: Recycling,
        workers: WorkerRegistry,
        fetching: Fetching,
        queues: Callable[[], list[str]],
        task_names: Callable[[], list[str]],
    ) -> None:
        self._inflight = inflight
        self._throttle = throttle
        self._gate = gate
        self._recycling = recycling
        self._workers = workers
        self._fetching = fetching
        self._queues = queues
        self._task_names = task_names
        self._tasks: list[asyncio.Task[None]] = []

    async def start(
        self, settings: Settings, layout: Layout, nc: NATS, redis_ping: Callable[[], Awaitable[Any]]
    ) -> None:
        """Listen for cancel requests and queue pauses, then start every loop."""
        await nc.subscribe(layout.cancel_subject, cb=self._inflight.on_cancel_message)
        await nc.subscribe(layout.queues_subject, cb=self._gate.on_broadcast)
        await self._gate.try_refresh()  # which queues are paused, before any fetch
        leases = Leases(
            self._inflight,
            self._throttle,
            settings.heartbeat_interval_s,
            settings.redelivery_delay_s,
        )
        vitals = self._workers.vitals.watch_loop(leases.beating, settings.worker_heartbeat_dir)
        report = self._report_alive(
            settings.worker_report_interval_s, lambda: flush(nc, PROBE_TIMEOUT_S), redis_ping
        )
        self._tasks = [
            asyncio.create_task(leases.run(), name="taskjet-leases"),
            asyncio.create_task(report, name="taskjet-reporter"),
            asyncio.create_task(self._gate.run(), name="taskjet-queue-gate"),
            asyncio.create_task(self._recycling.watch_memory(), name="taskjet-memory"),
            asyncio.create_task(vitals, name="taskjet-vitals"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_all(tasks)

    async def _report_alive(
        self,
        interval_s: float,
        nats_ping: Callable[[], Awaitable[Any]],
        redis_ping: Callable[[], Awaitable[Any]],
    ) -> None:
        while True:
            try:
                await self._workers.vitals.measure_round_trips(nats_ping, redis_ping)
                await self._workers.report(
                    self._inflight,
                    self._queues(),
                    sorted(self._fetching.problems.values()),
                    self._task_names(),
                )
            except Exception as exc:
                logger.warning("cannot report this worker alive: %s", exc)
            await asyncio.sleep(interval_s)
