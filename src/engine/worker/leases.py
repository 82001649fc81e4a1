"""The lease heartbeat: running tasks keep their messages (and concurrency slots) while they run.

Every `ack_wait / 3` each unsettled delivery's lease is extended (`in_progress`), so a task
longer than `ack_wait` is not redelivered to a second worker; concurrency slots are renewed the
same way. A delivery whose run ended without settling it (the receiver crashed in between) is
handed back instead of being extended for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time

from src.engine.worker.inflight import InFlight
from src.engine.worker.throttle import Holder, Throttle

logger = logging.getLogger("taskjet.leases")


class Leases:
    def __init__(
        self,
        inflight: InFlight,
        throttle: Throttle,
        interval_s: float,
        redelivery_delay_s: float,
    ) -> None:
        self._inflight = inflight
        self._throttle = throttle
        self._interval_s = interval_s
        self._redelivery_delay_s = redelivery_delay_s
        self.last_beat = time.monotonic()  # the heartbeat itself is alive (worker health)

    def beating(self) -> bool:
        """The heartbeat ran within three of its intervals (the worker's liveness)."""
        return time.monotonic() - self.last_beat < 3 * self._interval_s

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.beat()

    async def beat(self) -> None:
        self.last_beat = time.monotonic()
        for delivery in list(self._inflight.deliveries):
            if delivery.settled:
                continue
            if delivery.runner is not None and delivery.runner.done():
                # The receiver's callback ended without acking (it crashed): run it again.
                logger.error("task %s ended without settling; handing it back", delivery.task_id)
                await delivery.nak(self._redelivery_delay_s)
                continue
            try:
                await delivery.extend()
            except Exception as exc:
                logger.warning("could not extend lease of %s: %s", delivery.task_id, exc)
        holders = [
            Holder(d.message.task_name, d.task_id, d.limit_scope)
            for d in self._inflight.deliveries
            if d.holds_slot and not d.settled
        ]
        if holders:
            try:
                await self._throttle.renew(holders)
            except Exception as exc:
                logger.warning("could not renew concurrency slots: %s", exc)
