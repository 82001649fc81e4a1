"""taskiq middleware that turns a task's failure into a retry or a dead letter.

It only records the decision on the running delivery; the broker settles the message by it
when taskiq's receiver acks (see `guard.DeliveryGuard.finish`), and the result backend skips
storing a failure that will be retried, so `wait_result` only ever sees the final outcome.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from src.tasks.delivery import current_delivery
from src.tasks.dlq import DeadLetter
from src.tasks.errors import TaskCancelledError

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker

logger = logging.getLogger("taskjet.retry")


class GuaranteesMiddleware(TaskiqMiddleware):
    """Default time limit, retries with backoff and jitter, dead-lettering of final failures."""

    def __init__(self, broker: JetStreamBroker) -> None:
        super().__init__()
        self._taskjet = broker

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        default_timeout_s = self._taskjet.settings.default_timeout_s
        if default_timeout_s and "timeout" not in message.labels:
            message.labels["timeout"] = default_timeout_s
        return message

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        delivery = current_delivery.get()
        if delivery is None or isinstance(exception, TaskCancelledError):
            return  # a cancelled task ends CANCELLED: asked for, so neither retried nor dead
        guard = self._taskjet.guard
        policy = guard.policy(message)
        try:
            failures = await guard.count_failure(message)
        except Exception as exc:  # Redis down: the outcome cannot be recorded; run again later
            logger.warning("cannot record failure of %s: %s", message.task_id, exc)
            delivery.save_failed = True
            return
        if policy.should_retry(exception, failures):
            delivery.retry_in_s = policy.delay_s(failures)
            logger.info(
                "task %s (%s) failed (%s: %s); retry %d of %d in %.2fs",
                message.task_name,
                message.task_id,
                type(exception).__name__,
                exception,
                failures,
                policy.max_retries,
                delivery.retry_in_s,
            )
            return
        if message.labels.get("dead_letter", True) in (False, "false", "False", 0):
            return
        exhausted = policy.retry_on_error and isinstance(exception, policy.retry_for)
        delivery.dead = DeadLetter.of(
            message,
            delivery.queue,
            "exhausted" if exhausted else "failed",
            delivery.attempt,
            exception,
        )
