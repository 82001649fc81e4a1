"""What one worker process holds right now, and how much more it may take.

Shared by the fetch loops (which never ask for more than the free room), the lease heartbeat,
cancellation and shutdown. `reserved` counts room promised to pull requests still open.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from src.engine.worker.delivery import Delivery

logger = logging.getLogger(__name__)


# A process running tasks fetches again once this share of its capacity is free: starts, their
# records and their outcomes then go in batches, not one round trip each as single slots free.
REFILL_SHARE = 0.25


class InFlight:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.deliveries: set[Delivery] = set()
        self.by_task: dict[str, Delivery] = {}
        self.reserved = 0
        self.freed = asyncio.Event()
        # Deliveries this process may still take in its life (None: no end); a process
        # recycled after so many tasks fetches no more than it will run.
        self.remaining: int | None = None

    @property
    def free(self) -> int:
        room = self.capacity - len(self.deliveries)
        if self.remaining is not None:
            room = min(room, self.remaining)
        return room - self.reserved

    @property
    def refill(self) -> bool:
        """Whether a fetch is worth making now: there is room, and either nothing runs here or
        a batch's worth of it (`REFILL_SHARE` of the capacity, or all that is left to take)."""
        free = self.free
        if free <= 0:
            return False
        if not self.deliveries:
            return True
        room = self.capacity if self.remaining is None else min(self.capacity, self.remaining)
        return free >= max(1, int(room * REFILL_SHARE))

    def __len__(self) -> int:
        return len(self.deliveries)

    def add(self, delivery: Delivery) -> None:
        if self.remaining is not None:
            self.remaining -= 1
        self.deliveries.add(delivery)
        self.by_task[delivery.task_id] = delivery
        delivery.on_settle.append(self.forget)

    def forget(self, delivery: Delivery) -> None:
        self.deliveries.discard(delivery)
        if self.by_task.get(delivery.task_id) is delivery:
            del self.by_task[delivery.task_id]
        if self.refill:
            self.freed.set()

    async def on_cancel_message(self, msg: Msg) -> None:
        """A cancel request (its body: a task id) for a task this process may be running."""
        delivery = self.by_task.get(msg.data.decode(errors="replace"))
        if delivery is not None and not delivery.settled:
            logger.info("cancelling task %s", delivery.task_id)
            delivery.request_cancel()
