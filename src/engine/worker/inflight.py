"""What one worker process holds right now, and how much more it may take.

Shared by the fetch loops (which never ask for more than the free room), the lease heartbeat,
cancellation and shutdown. `reserved` counts room promised to pull requests still open. A slot
is a running function: a delivery whose function returned frees its slot while its outcome is
saved and it is settled (`ended`), so the next task starts meanwhile; at most as many again
as the capacity may be ending at once.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from src.engine.worker.delivery import Delivery

logger = logging.getLogger(__name__)


# A process running short tasks fetches again once this share of its capacity is free: starts,
# their records and their outcomes then go in batches, not one round trip each as single slots
# free. Batches save CPU where CPU is what limits the process.
REFILL_SHARE = 0.25
# Tasks whose function runs longer than this (a moving average) leave the process mostly waiting:
# then a slot is what limits it, and batches cost slots. A batch's tasks start together, end
# together and are settled one after the other, so each slot of a batch waits for all of them;
# the process fetches as soon as a slot is free instead, at most `LONG_RUN_BATCH` at a time, and
# the starts (hence the ends) spread out.
LONG_RUN_S = 0.02
LONG_RUN_BATCH = 8
# Weight of the latest run in the moving average of run times.
_RUN_WEIGHT = 0.05


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
        self.run_s = 0.0  # moving average of how long the tasks' functions ran
        self.ended: set[Delivery] = set()  # held, function returned: settling, not running

    @property
    def free(self) -> int:
        held = len(self.deliveries)
        room = min(self.capacity - held + len(self.ended), 2 * self.capacity - held)
        if self.remaining is not None:
            room = min(room, self.remaining)
        return room - self.reserved

    @property
    def refill(self) -> bool:
        """Whether a fetch is worth making now: there is room, and nothing runs here, or tasks
        run long (a slot is then worth more than a batch), or a batch's worth of room is free
        (`REFILL_SHARE` of the capacity, or all that is left to take)."""
        free = self.free
        if free <= 0:
            return False
        if not len(self):  # nothing runs
            return True
        if self.run_s >= LONG_RUN_S:
            return True
        room = self.capacity if self.remaining is None else min(self.capacity, self.remaining)
        return free >= max(1, int(room * REFILL_SHARE))

    def batch(self, largest: int) -> int:
        """How many tasks to fetch at once now: the free room, up to `largest` (the settings'
        `fetch_batch`), and up to `LONG_RUN_BATCH` while tasks run long and some run here (an
        idle process fills up at once; the slots it filled together spread out as they free
        a few at a time)."""
        if self.run_s >= LONG_RUN_S and len(self):
            largest = min(largest, LONG_RUN_BATCH)
        return min(self.free, largest)

    @property
    def spare(self) -> int:
        """How many tasks to fetch ahead of free room (`spare.py`): `LONG_RUN_BATCH` while
        tasks run long, so a slot that frees starts one without waiting for a pull; none for
        short tasks (a fetch brings a batch anyway) or a process with an end in sight."""
        return LONG_RUN_BATCH if self.run_s >= LONG_RUN_S and self.remaining is None else 0

    def __len__(self) -> int:
        """How many tasks run here now (held deliveries whose function has not returned)."""
        return len(self.deliveries) - len(self.ended)

    def add(self, delivery: Delivery) -> None:
        if self.remaining is not None:
            self.remaining -= 1
        self.deliveries.add(delivery)
        self.by_task[delivery.task_id] = delivery
        delivery.on_settle.append(self.forget)
        delivery.on_return = self.returned

    def returned(self, delivery: Delivery, ran_s: float) -> None:
        """Its function ended after `ran_s`: its slot is free, though the delivery is held
        until settled."""
        self.run_s += (ran_s - self.run_s) * _RUN_WEIGHT
        if delivery.settled or delivery not in self.deliveries:
            return  # settled while it ran (handed back at shutdown): gone already
        self.ended.add(delivery)
        if self.refill:
            self.freed.set()

    def forget(self, delivery: Delivery) -> None:
        self.ended.discard(delivery)
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
