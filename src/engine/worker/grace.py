"""The shutdown grace period: once a worker stops fetching, running tasks get
`TASKJET_SHUTDOWN_GRACE_S` to finish; whatever still runs then is handed back to the queue and
cancelled (handed back first, so its cancellation is never saved as its result). This holds
whether or not taskiq's own `--wait-tasks-timeout` was given."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from src.engine.worker.delivery import hand_back
from src.engine.worker.inflight import InFlight


class Grace:
    def __init__(self, inflight: InFlight, grace_s: Callable[[], float]) -> None:
        self._inflight = inflight
        self._grace_s = grace_s
        self._timer: asyncio.TimerHandle | None = None
        self._ending: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Fetching stopped: the clock starts (once)."""
        if self._timer is None:
            grace_s = self._grace_s()
            self._timer = asyncio.get_running_loop().call_later(
                grace_s, self._end, f"still running after {grace_s:g}s of grace"
            )

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self, why: str) -> None:
        self._ending = asyncio.ensure_future(self.abandon_unfinished(why))

    async def abandon_unfinished(self, why: str) -> None:
        """Hand back what is still running, then cancel it."""
        unfinished = [d for d in self._inflight.deliveries if not d.settled]
        await hand_back(unfinished, why)
        for delivery in unfinished:
            if delivery.runner is not None and not delivery.runner.done():
                delivery.runner.cancel()
