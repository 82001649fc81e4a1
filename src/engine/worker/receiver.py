"""taskjet's taskiq receiver: each delivery the broker yields starts running at once.

    taskiq worker src.tasks.broker:broker <modules> --receiver src.tasks.broker:TaskjetReceiver

taskiq's stock `Receiver` bounds how much it holds itself: every message passes a prefetch
queue and two semaphores, with a `create_task` and an `asyncio.wait` per message, which cost
more worker CPU than a short task. taskjet's fetch loops already never hold more deliveries
than `--max-async-tasks` (`fetcher.py`), so this receiver starts one asyncio task per delivery
and nothing else. Each run still goes through taskiq's own `callback`: middlewares, dependencies
(`TaskiqDepends`), the `timeout` label, the result backend and the `ack` that settles the
delivery by its verdict. Shutdown is taskiq's: stop taking deliveries (the broker hands back
what it fetched but did not yield), then wait for running tasks up to `--wait-tasks-timeout`
(the broker's grace period hands back and cancels what outlives it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskiq.receiver import Receiver

logger = logging.getLogger("taskjet.receiver")


class TaskjetReceiver(Receiver):
    """A `Receiver` for brokers that bound their own deliveries (taskjet's)."""

    async def listen(self, finish_event: asyncio.Event) -> None:
        if self.run_startup:
            await self.broker.startup()
        logger.info("Listening started.")
        running: set[asyncio.Task[None]] = set()
        taking = asyncio.create_task(self._take(running), name="taskjet-receiver")
        finishing = asyncio.create_task(finish_event.wait())
        try:
            await asyncio.wait({taking, finishing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finishing.cancel()
            taking.cancel()  # closes the broker's listener: it hands back what it holds
            await asyncio.wait({taking})
        if not taking.cancelled() and taking.exception() is not None:
            raise taking.exception()  # type: ignore[misc]  # checked just above
        if running:
            logger.info("Waiting for %d running tasks to complete...", len(running))
            await asyncio.wait(running, timeout=self.wait_tasks_timeout)
        if self.on_exit is not None:
            self.on_exit(self)

    async def _take(self, running: set[asyncio.Task[None]]) -> None:
        """Start a run for each delivery, until `--max-tasks-per-child` or cancelled."""
        taken = 0
        async with contextlib.aclosing(self.broker.listen()) as deliveries:
            async for message in deliveries:
                run = asyncio.create_task(self.callback(message, raise_err=False))
                running.add(run)
                run.add_done_callback(running.discard)
                taken += 1
                if self.max_tasks_to_execute and taken >= self.max_tasks_to_execute:
                    logger.info("Max number of tasks executed.")
                    return
