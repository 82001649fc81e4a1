"""One JetStream delivery of a task, from fetch to its single final ack or nak.

taskiq's receiver acks whatever happened, including when the result could not be saved.
taskjet hands the receiver an `ack` bound to a `Delivery` that knows better: it acks only
when the outcome is safely stored and otherwise asks JetStream to deliver the task again.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taskiq.message import TaskiqMessage

if TYPE_CHECKING:
    from nats.aio.msg import Msg

logger = logging.getLogger("taskjet.delivery")

current_delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "taskjet_current_delivery", default=None
)


@dataclass(eq=False, slots=True)
class Delivery:
    """A fetched message and what became of it; settled exactly once."""

    msg: Msg
    message: TaskiqMessage
    redelivery_delay_s: float
    started: bool = False
    settled: bool = False
    save_failed: bool = False
    on_settle: list[Callable[[Delivery], None]] = field(default_factory=list)

    @property
    def attempt(self) -> int:
        """1 for the first delivery; JetStream counts redeliveries for us."""
        return int(self.msg.metadata.num_delivered)

    async def ack(self) -> None:
        """Called by taskiq's receiver once it is done with the message."""
        if self.save_failed:
            logger.warning(
                "task %s %s: result not saved, redelivering in %.1fs",
                self.message.task_name,
                self.message.task_id,
                self.redelivery_delay_s,
            )
            await self.nak(self.redelivery_delay_s)
            return
        await self._settle(self.msg.ack)

    async def nak(self, delay_s: float | None = None) -> None:
        """Hand the message back so it is delivered again (after `delay_s`)."""
        await self._settle(lambda: self.msg.nak(delay=delay_s))

    async def term(self) -> None:
        """Stop redelivery for good; only after the message was kept elsewhere (DLQ)."""
        await self._settle(self.msg.term)

    async def extend(self) -> None:
        """Reset the server's ack timer while the task still runs."""
        if not self.settled:
            await self.msg.in_progress()

    async def _settle(self, action: Callable[[], Awaitable[None]]) -> None:
        if self.settled:
            return
        self.settled = True
        try:
            await action()
        finally:
            for callback in self.on_settle:
                callback(self)


class DeliveryBytes(bytes):
    """The raw message body, carrying its decoded `Delivery` through taskiq's receiver.

    The receiver hands these bytes to the broker's formatter inside the asyncio task that runs
    the message, which is where `current_delivery` must be set: middlewares, the result backend
    and task dependencies of that run all see their own delivery.
    """

    delivery: Delivery

    @classmethod
    def wrap(cls, data: bytes, delivery: Delivery) -> DeliveryBytes:
        instance = cls(data)
        instance.delivery = delivery
        return instance
