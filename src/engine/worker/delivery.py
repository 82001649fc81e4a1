"""One JetStream delivery of a task, from fetch to its single final ack, nak or term.

taskiq's receiver acks whatever happened, including when the result could not be saved.
taskjet hands the receiver an `ack` that settles the delivery by its recorded outcome instead
(see `verdict.py` and `settlement.py`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taskiq.abc.formatter import TaskiqFormatter
from taskiq.message import TaskiqMessage

from src.engine.core.labels import TaskLabels
from src.engine.core.wire import EncodedMessage, decode, encoded

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from src.engine.state.dead_letters import DeadLetter

CANCEL_MESSAGE = "taskjet: cancelled"
_logger = logging.getLogger("taskjet.fetch")  # hand-backs are logged with the fetching

current_delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "taskjet_current_delivery", default=None
)


@dataclass(eq=False, slots=True)
class Delivery:
    """A fetched message and what became of it; settled exactly once."""

    msg: Msg
    message: TaskiqMessage
    queue: str
    labels: TaskLabels
    attempt: int = 1
    # Set while the task runs (by the receiver, the middleware and the result backend):
    runner: asyncio.Task[object] | None = None
    save_failed: bool = False
    retry_in_s: float | None = None
    dead: DeadLetter | None = None
    settled: bool = False
    # Cancellation (see `time_limits.py`): the asyncio task running the task's function, and
    # whether a cancel was asked for.
    body: asyncio.Task[object] | None = None
    cancel_requested: bool = False
    limit_scope: str | None = None  # the `limit_key` value its limits count against
    holds_slot: bool = False  # holds a concurrency slot until settled
    on_settle: list[Callable[[Delivery], None]] = field(default_factory=list)
    fetched_at: float = field(default_factory=time.time)
    extended_at: float | None = None  # when its lease was last extended
    on_return: Callable[[Delivery, float], None] | None = None  # told how long it ran

    @property
    def task_id(self) -> str:
        return self.message.task_id

    @property
    def sequence(self) -> int:
        return int(self.msg.metadata.sequence.stream)

    @property
    def redelivered(self) -> bool:
        return int(self.msg.metadata.num_delivered) > 1

    def request_cancel(self) -> None:
        """Cancel the running function at its next `await`; it ends as CANCELLED."""
        self.cancel_requested = True
        if self.body is not None and not self.body.done():
            self.body.cancel(CANCEL_MESSAGE)

    def returned(self, ran_s: float) -> None:
        """The task's function ended (however): its slot may take the next task while this
        delivery's outcome is saved and it is settled."""
        if self.on_return is not None:
            self.on_return(self, ran_s)

    async def ack(self) -> None:
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
            self.extended_at = time.time()

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


class JetStreamFormatter(TaskiqFormatter):
    """JSON on the wire; on the worker, binds the delivery being run to its asyncio task."""

    def dumps(self, message: TaskiqMessage) -> EncodedMessage:
        return encoded(message)

    def loads(self, message: bytes) -> TaskiqMessage:
        if isinstance(message, DeliveryBytes):
            delivery = message.delivery
            delivery.runner = asyncio.current_task()
            current_delivery.set(delivery)
            return delivery.message
        return decode(message)


async def hand_back(deliveries: list[Delivery], why: str) -> None:
    """Nak unfinished deliveries so another worker takes them now, not after `ack_wait`."""
    if not deliveries:
        return
    _logger.info("handing back %d task(s): %s", len(deliveries), why)
    for delivery in deliveries:
        try:
            await delivery.nak()
        except Exception as exc:
            _logger.warning("could not hand back task %s: %r", delivery.task_id, exc)
