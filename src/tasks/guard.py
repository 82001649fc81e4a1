"""What happens to each delivery: whether it may run, and how it is settled afterwards.

Before a task reaches taskiq's receiver (`admit`): undecodable bodies, tasks no local worker
knows, tasks past their `max_age`, and poison tasks (started again and again, never finishing)
are dealt with here, never acked and forgotten. After it ran (`finish`): ack, nak for a retry or
a failed save, or dead-letter and remove.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from src.tasks.delivery import Delivery, current_delivery
from src.tasks.dlq import DeadLetter, Reason
from src.tasks.errors import PoisonTaskError, TaskExpiredError, UnknownTaskError
from src.tasks.events import TaskEvent
from src.tasks.formatter import decode
from src.tasks.policy import RetryPolicy
from src.tasks.records import Transition
from src.tasks.states import TaskState
from src.tasks.throttle import LimitError, Limits

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker

logger = logging.getLogger("taskjet.guard")


class DeliveryGuard:
    def __init__(self, broker: JetStreamBroker) -> None:
        self.broker = broker

    # Before running ---------------------------------------------------------------------
    async def admit(self, msg: Msg, queue: str) -> Delivery | None:  # noqa: PLR0911  # one exit per way out
        """A `Delivery` to run, or None when the message was settled here."""
        settings = self.broker.settings
        try:
            message = decode(msg.data)
        except ValueError as exc:
            logger.error("undecodable message %s on %s: %s", _seq(msg), msg.subject, exc)
            await self._dead_letter_raw(msg, queue, exc)
            return None
        delivery = Delivery(msg, message, queue)
        age_s = max(0.0, time.time() - msg.metadata.timestamp.timestamp())

        task = self.broker.find_task(message.task_name)
        if task is None:
            if age_s > settings.unknown_task_dlq_after_s:
                error = UnknownTaskError.after(message.task_name, age_s)
                await self.give_up(delivery, "unknown_task", error)
            else:
                logger.warning(
                    "task %r (%s) is not known to this worker; offered again in %.1fs",
                    message.task_name,
                    message.task_id,
                    settings.unknown_task_delay_s,
                )
                await delivery.nak(settings.unknown_task_delay_s)
            return None

        max_age_s = float(message.labels.get("max_age", settings.default_max_age_s) or 0)
        if max_age_s and age_s > max_age_s:
            await self.give_up(delivery, "expired", TaskExpiredError.after(age_s, max_age_s))
            return None

        if await self._held_back(delivery, dict(task.labels)):
            return None

        if delivery.redelivered:
            try:
                delivery.attempt = await self._count_start(message)
            except Exception as exc:  # Redis down: try again later rather than guess
                logger.warning("cannot count attempts of %s: %s", message.task_id, exc)
                await delivery.nak(settings.redelivery_delay_s)
                return None
            policy = self.policy(message)
            allowed = (policy.max_retries if policy.retry_on_error else 0) + 1
            if delivery.attempt > allowed + settings.max_redeliveries:
                await self.give_up(delivery, "poison", PoisonTaskError.after(delivery.attempt))
                return None
        message.labels["attempt"] = delivery.attempt
        message.labels["redelivered"] = delivery.redelivered
        return delivery

    async def _held_back(self, delivery: Delivery, local: dict[str, Any]) -> bool:
        """Apply the task's rate and concurrency limits; True if it was settled (deferred)."""
        message = delivery.message
        try:
            limits = Limits.of(message, local)
        except LimitError as exc:
            await self.give_up(delivery, "failed", exc)
            return True
        if limits is None:
            return False
        try:
            wait_s = await self.broker.throttle.admit(message, limits)
        except Exception as exc:  # Redis down: the limit cannot be checked; later
            logger.warning("cannot check limits of %s: %s", message.task_id, exc)
            await delivery.nak(self.broker.settings.redelivery_delay_s)
            return True
        if wait_s is not None:
            await delivery.nak(wait_s)  # deferred, not failed: no attempt is counted
            return True
        delivery.limits = limits
        return False

    async def start(self, admitted: list[Delivery], worker_id: str) -> list[Delivery]:
        """Mark a fetched batch STARTED in one round trip; cancelled tasks are settled here."""
        if not admitted:
            return []
        broker = self.broker
        now = time.time()
        transitions = [
            Transition(
                d.message.task_id,
                d.message.task_name,
                TaskState.STARTED,
                "start",
                {
                    "started_at": now,
                    "worker": worker_id,
                    "attempts": d.attempt,
                    "ack": d.msg.reply,
                    "seq": d.sequence,
                },
            )
            for d in admitted
        ]
        try:
            before = await broker.records.apply(transitions)
        except Exception as exc:  # Redis down: the outcome could not be saved either
            logger.warning("cannot record %d task start(s): %s", len(admitted), exc)
            for delivery in admitted:
                await delivery.nak(broker.settings.redelivery_delay_s)
            return []
        runnable: list[Delivery] = []
        for delivery, state in zip(admitted, before, strict=True):
            message = delivery.message
            if state is TaskState.CANCELLED:
                logger.info("task %s was cancelled before it started", message.task_id)
                await delivery.ack()
                continue
            runnable.append(delivery)
            await broker.events.publish(
                TaskEvent.of(message.task_id, TaskState.STARTED), message.labels.get("client_id")
            )
        return runnable

    def policy(self, message: TaskiqMessage) -> RetryPolicy:
        task = self.broker.find_task(message.task_name)
        local: dict[str, Any] = dict(task.labels) if task is not None else {}
        return RetryPolicy.resolve(message.labels, local, self.broker.settings)

    async def _count_start(self, message: TaskiqMessage) -> int:
        """Starts so far, this one included; only redeliveries pay this round trip."""
        return await self._bump(message.task_id, "starts") + 1

    async def count_failure(self, message: TaskiqMessage) -> int:
        return await self._bump(message.task_id, "failures")

    async def _bump(self, task_id: str, counter: str) -> int:
        broker = self.broker
        key = broker.layout.attempts_key(task_id)
        async with broker.results.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, counter, 1)
            pipe.expire(key, broker.settings.result_ttl_s)
            value, _ = await pipe.execute()
        return int(value)

    # Giving up --------------------------------------------------------------------------
    async def give_up(self, delivery: Delivery, reason: Reason, error: BaseException) -> None:
        """Record a failure result (so waiters learn), dead-letter, then remove the message."""
        message = delivery.message
        logger.error(
            "task %s (%s) dead-lettered: %s: %s", message.task_name, message.task_id, reason, error
        )
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True, return_value=None, execution_time=0.0, error=error, labels=message.labels
        )
        delivery.dead = DeadLetter.of(message, delivery.queue, reason, delivery.attempt, error)
        token = current_delivery.set(delivery)
        try:
            await self.broker.results.set_result(message.task_id, result)
            await self.broker.dlq.add(delivery.dead, delivery.sequence)
        except Exception as exc:
            logger.warning("cannot dead-letter %s yet (%s); retrying later", message.task_id, exc)
            await delivery.nak(self.broker.settings.redelivery_delay_s)
            return
        finally:
            current_delivery.reset(token)
        await delivery.term()

    async def _dead_letter_raw(self, msg: Msg, queue: str, error: Exception) -> None:
        try:
            await self.broker.dlq.add(DeadLetter.undecodable(msg.data, queue, error), _seq(msg))
        except Exception as exc:
            logger.warning("cannot dead-letter message %s yet: %s", _seq(msg), exc)
            await msg.nak(delay=self.broker.settings.redelivery_delay_s)
            return
        await msg.term()

    # After running ----------------------------------------------------------------------
    async def finish(self, delivery: Delivery) -> None:
        """taskiq's receiver calls this as the message's `ack`."""
        settings = self.broker.settings
        message = delivery.message
        if delivery.save_failed:
            logger.warning(
                "task %s (%s): outcome not saved, runs again in %.1fs",
                message.task_name,
                message.task_id,
                settings.redelivery_delay_s,
            )
            await delivery.nak(settings.redelivery_delay_s)
        elif delivery.retry_in_s is not None:
            await delivery.nak(delivery.retry_in_s)
        elif delivery.dead is not None:
            try:
                await self.broker.dlq.add(delivery.dead, delivery.sequence)
            except Exception as exc:
                logger.warning("cannot dead-letter %s yet: %s", message.task_id, exc)
                await delivery.nak(settings.redelivery_delay_s)
                return
            await delivery.term()
        else:
            await delivery.ack()


def _seq(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)
