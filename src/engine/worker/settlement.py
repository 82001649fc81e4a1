"""Settling deliveries: the receiver's `ack` for a finished run, and giving a task up.

Nothing leaves the task stream without a trace: a task given up on is recorded (state and a
failing result, so waiters learn) and written to the dead-letter queue first, and only then
removed with `term`. If that cannot be done now (Redis or the DLQ unreachable), the message is
handed back to be tried again later instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from taskiq.result import TaskiqResult

from src.config import Settings
from src.engine.core.errors import InvalidTaskError, TaskCancelledError
from src.engine.core.labels import WorkflowStep
from src.engine.core.states import TaskState
from src.engine.core.wire import readable_task_id
from src.engine.state.dead_letters import DeadLetter, DeadLetterQueue, Reason
from src.engine.state.results import RedisResultBackend, dump_result
from src.engine.state.transitions import Transition, TransitionWriter
from src.engine.worker.delivery import Delivery, current_delivery
from src.engine.worker.verdict import verdict

logger = logging.getLogger("taskjet.settlement")


def _sequence(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


class Settlement:
    def __init__(
        self,
        settings: Callable[[], Settings],
        results: RedisResultBackend[Any],
        writes: TransitionWriter,
        dlq: DeadLetterQueue,
    ) -> None:
        self._settings = settings
        self._results = results
        self._writes = writes
        self._dlq = dlq
        # Told of each workflow step's end before its message is acked (see `workflows/`).
        self.step_ended: Callable[[str, WorkflowStep], Awaitable[None]] | None = None

    async def tell_workflow(self, delivery: Delivery) -> bool:
        """A step that ended tells its workflow, before its message goes: if that cannot be
        done now, the message is handed back and the next delivery tells it instead."""
        step = delivery.labels.workflow
        if step is None or self.step_ended is None:
            return True
        try:
            await self.step_ended(delivery.task_id, step)
        except Exception as exc:
            logger.warning("cannot tell workflow %s of %s: %s", step.workflow_id, step.step, exc)
            await delivery.nak(self._settings().redelivery_delay_s)
            return False
        return True

    async def finish(self, delivery: Delivery) -> None:
        """taskiq's receiver calls this as the message's `ack`, after the result was saved
        (or failed to be)."""
        decision = verdict(delivery, self._settings().redelivery_delay_s)
        if decision.action == "redeliver":
            logger.warning(
                "task %s (%s): outcome not saved, runs again in %.1fs",
                delivery.message.task_name,
                delivery.task_id,
                decision.delay_s,
            )
            await delivery.nak(decision.delay_s)
        elif decision.action == "retry":
            await delivery.nak(decision.delay_s)
        elif decision.action == "dead_letter":
            assert delivery.dead is not None
            try:
                await self._dlq.add(delivery.dead, delivery.sequence)
            except Exception as exc:
                logger.warning("cannot dead-letter %s yet: %s", delivery.task_id, exc)
                await delivery.nak(self._settings().redelivery_delay_s)
                return
            if await self.tell_workflow(delivery):
                await delivery.term()
        elif await self.tell_workflow(delivery):
            await delivery.ack()

    async def give_up(self, delivery: Delivery, reason: Reason, error: BaseException) -> None:
        """Record a failure result (so waiters learn), dead-letter, then remove the message."""
        message = delivery.message
        logger.error(
            "task %s (%s) dead-lettered: %s: %s", message.task_name, delivery.task_id, reason, error
        )
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True, return_value=None, execution_time=0.0, error=error, labels=message.labels
        )
        delivery.dead = DeadLetter.of(message, delivery.queue, reason, delivery.attempt, error)
        token = current_delivery.set(delivery)
        try:
            await self._results.set_result(delivery.task_id, result)
            await self._dlq.add(delivery.dead, delivery.sequence)
        except Exception as exc:
            logger.warning("cannot dead-letter %s yet (%s); retrying later", delivery.task_id, exc)
            await delivery.nak(self._settings().redelivery_delay_s)
            return
        finally:
            current_delivery.reset(token)
        if await self.tell_workflow(delivery):
            await delivery.term()

    async def cancelled_run_without_outcome(self, delivery: Delivery) -> TaskCancelledError | None:
        """A task cancelled while it ran, whose worker died before it could store the outcome:
        its record says CANCELLED, but no result exists and no webhook went out. The worker
        that gets the message again stores that outcome (once: only if no result exists yet)
        instead of running the task, so waiters and webhooks learn. Returns the error stored,
        None if an outcome was there already."""
        if await self._results.is_result_ready(delivery.task_id):
            return None
        error = TaskCancelledError.while_running()
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True,
            return_value=None,
            execution_time=0.0,
            error=error,
            labels=delivery.message.labels,
        )
        await self._writes.submit(
            Transition(
                delivery.task_id,
                delivery.message.task_name,
                TaskState.CANCELLED,
                "final",
                {
                    "finished_at": time.time(),
                    "error_type": type(error).__name__,
                    "error_message": str(error),
                },
                dispatch=delivery.labels.dispatch,
                attempt=delivery.attempt,
                result=dump_result(result),
                labels=delivery.labels,
            )
        )
        logger.warning(
            "task %s was cancelled while its worker was gone; outcome stored", delivery.task_id
        )
        return error

    async def give_up_undecodable(self, msg: Msg, queue: str, error: Exception) -> None:
        """A body that is not a task: dead-lettered whole; if a task id can be read from it,
        that task's record and result say so, so nobody waits on it for ever."""
        task_id, task_name = readable_task_id(msg.data)
        logger.error(
            "undecodable message %s on %s (task %s): %s",
            _sequence(msg),
            msg.subject,
            task_id or "unknown",
            error,
        )
        try:
            if task_id is not None:
                await self._record_undecodable(task_id, task_name, error)
            await self._dlq.add(
                DeadLetter.undecodable(msg.data, queue, error, task_id), _sequence(msg)
            )
        except Exception as exc:
            logger.warning("cannot dead-letter message %s yet: %s", _sequence(msg), exc)
            await msg.nak(delay=self._settings().redelivery_delay_s)
            return
        await msg.term()

    async def _record_undecodable(self, task_id: str, task_name: str, error: Exception) -> None:
        failure = InvalidTaskError(f"the task's message could not be decoded: {error}"[:2000])
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True, return_value=None, execution_time=0.0, error=failure
        )
        await self._writes.submit(
            Transition(
                task_id,
                task_name,
                TaskState.DEAD,
                "advance",
                {
                    "finished_at": time.time(),
                    "error_type": type(failure).__name__,
                    "error_message": str(failure),
                },
                result=dump_result(result),
            )
        )
