"""Which of its queues a worker may fetch from right now: those not paused.

The paused set is re-read when a pause or resume is broadcast, and at least every second; a
fetch loop whose queue is paused withdraws its pulls and waits for the next change. Until the set
has been read once every queue counts as paused: a worker started while a queue is paused must
not fetch from it before it learns so.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from src.engine.state.queue_pauses import REFRESH_S, QueuePauses

logger = logging.getLogger("taskjet.queues")


class QueueGate:
    def __init__(self, pauses: QueuePauses) -> None:
        self._pauses = pauses
        self.paused: frozenset[str] = frozenset()
        self._known = False  # whether `paused` was read yet
        self._change = asyncio.Event()

    def is_open(self, queue: str) -> bool:
        return self._known and queue not in self.paused

    async def changed(self) -> None:
        """Returns at the next change of the paused set."""
        await self._change.wait()

    async def refresh(self) -> None:
        paused = frozenset(await self._pauses.paused())
        if paused != self.paused or not self._known:
            for queue in sorted(paused - self.paused):
                logger.info("queue %s paused: not fetching from it", queue)
            for queue in sorted(self.paused - paused):
                logger.info("queue %s resumed", queue)
            self.paused, self._known = paused, True
            self._change.set()
            self._change = asyncio.Event()

    async def on_broadcast(self, _: Msg) -> None:
        await self.try_refresh()

    async def try_refresh(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # Redis away: the periodic refresh tries again
            logger.warning("cannot read paused queues: %s", exc)

    async def run(self) -> None:
        while True:
            await self.try_refresh()
            await asyncio.sleep(REFRESH_S)
