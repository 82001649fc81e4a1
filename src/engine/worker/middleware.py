"""taskiq middleware that turns a task's failure into a retry or a dead letter.

It only records the decision on the running delivery; the delivery is settled by it when
taskiq's receiver acks (see `verdict.py`), and the result backend skips storing a failure that
will be retried, so `wait_result` only ever sees the final outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from src.engine.core.errors import TaskCancelledError
from src.engine.state.dead_letters import DeadLetter
from src.engine.worker import retry
from src.engine.worker.attempts import AttemptCounter
from src.engine.worker.delivery import Delivery

logger = logging.getLogger("taskjet.retry")


class GuaranteesMiddleware(TaskiqMiddleware):
    """Default time limit, retries with backoff and jitter, dead-lettering of final failures."""

    def __init__(self, attempts: AttemptCounter, current: Callable[[], Delivery | None]) -> None:
        super().__init__()
        self._attempts = attempts
        self._current = current

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        delivery = self._current()
        # The label wins; otherwise the project-wide default, if any.
        if delivery is not None and "timeout" not in message.labels and delivery.labels.timeout_s:
            message.labels["timeout"] = delivery.labels.timeout_s
        return message

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        delivery = self._current()
        if delivery is None or isinstance(exception, TaskCancelledError):
            return  # a cancelled task ends CANCELLED: asked for, so neither retried nor dead
        policy = delivery.labels.retry
        try:
            failures = await self._attempts.bump(message.task_id, "failures")
        except Exception as exc:  # Redis down: the outcome cannot be recorded; run again later
            logger.warning("cannot record failure of %s: %s", message.task_id, exc)
            delivery.save_failed = True
            return
        if retry.should_retry(policy, exception, failures):
            delivery.retry_in_s = retry.delay_for(policy, exception, failures)
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
        if not delivery.labels.dead_letter:
            return
        exhausted = policy.retry_on_error and isinstance(exception, policy.retry_for)
        delivery.dead = DeadLetter.of(
            message,
            delivery.queue,
            "exhausted" if exhausted else "failed",
            delivery.attempt,
            exception,
        )
