"""Admitting fetched messages: whether each may run now, and marking a batch STARTED.

Before a task reaches taskiq's receiver, undecodable bodies, labels taskjet cannot use, tasks
no local worker knows, tasks past their `max_age`, tasks over a rate or concurrency limit and
poison tasks (started again and again, never finishing) are dealt with here: deferred, handed
back or dead-lettered, never acked and forgotten. Admission never raises: whatever goes wrong
with one message is that message's fate (dead-lettered with the reason, or handed back), never
the fetch loop's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from nats.aio.msg import Msg
from taskiq.decor import AsyncTaskiqDecoratedTask

from src.config import Settings
from src.engine.core.errors import (
    InvalidTaskError,
    LabelError,
    PoisonTaskError,
    TaskExpiredError,
    UnknownTaskError,
)
from src.engine.core.labels import ACK_TYPE, ATTEMPT, REDELIVERED, TaskLabels
from src.engine.core.states import EVENT_STATUS, TaskState
from src.engine.core.wire import decode
from src.engine.sending.label_reads import LABEL_READS
from src.engine.state.events import EventBus, TaskEvent, event_body
from src.engine.state.transitions import Transition, TransitionWriter
from src.engine.worker.attempts import AttemptCounter
from src.engine.worker.delivery import Delivery
from src.engine.worker.settlement import Settlement
from src.engine.worker.throttle import Holder, Throttle

logger = logging.getLogger("taskjet.admission")

_STARTED = EVENT_STATUS[TaskState.STARTED]

FindTask = Callable[[str], AsyncTaskiqDecoratedTask[Any, Any] | None]


class Marking(NamedTuple):
    """A batch's STARTED write, queued: its transitions and their answers to come."""

    transitions: list[Transition]
    sent: asyncio.Future[list[Any]]


class Admission:
    def __init__(
        self,
        *,
        settings: Callable[[], Settings],
        find_task: FindTask,
        throttle: Throttle,
        attempts: AttemptCounter,
        settlement: Settlement,
        writes: TransitionWriter,
        events: Callable[[], EventBus],
    ) -> None:
        self._settings = settings
        self._find_task = find_task
        self._throttle = throttle
        self._attempts = attempts
        self._settlement = settlement
        self._writes = writes
        self._events = events

    async def admit(self, msg: Msg, queue: str) -> Delivery | None:
        """A `Delivery` to run, or None when the message was settled (or deferred) here."""
        try:
            return await self._admit(msg, queue)
        except Exception as exc:  # a bug or a message nobody foresaw: its fate, not the loop's
            logger.exception("cannot admit message on %s", msg.subject)
            await self._refuse(msg, queue, exc)
            return None

    async def _refuse(self, msg: Msg, queue: str, exc: Exception) -> None:
        settings = self._settings()
        try:
            message = decode(msg.data)
            delivery = Delivery(msg, message, queue, TaskLabels.lenient(message.labels, settings))
            error = InvalidTaskError(f"cannot be run: {type(exc).__name__}: {exc}")
            await self._settlement.give_up(delivery, "invalid", error)
        except Exception:
            logger.exception("cannot dead-letter message on %s; handing it back", msg.subject)
            try:
                await msg.nak(delay=settings.redelivery_delay_s)
            except Exception as nak_error:
                logger.warning("cannot hand back message on %s: %s", msg.subject, nak_error)

    async def _admit(self, msg: Msg, queue: str) -> Delivery | None:  # noqa: PLR0911  # one exit per way out
        settings = self._settings()
        try:
            message = decode(msg.data)
        except ValueError as exc:
            await self._settlement.give_up_undecodable(msg, queue, exc)
            return None
        task = self._find_task(message.task_name)
        if message.labels.pop(ACK_TYPE, None) is not None:
            # taskiq's receiver would ack it before the result is saved: never.
            logger.warning("task %s: ack_type label ignored (acked after save)", message.task_id)
        try:
            labels = (
                LABEL_READS.read_for_task(message.labels, message.task_name, task.labels, settings)
                if task is not None
                else LABEL_READS.read(message.labels, settings)
            )
        except LabelError as exc:
            delivery = Delivery(msg, message, queue, TaskLabels.lenient(message.labels, settings))
            await self._settlement.give_up(delivery, "invalid", InvalidTaskError(str(exc)))
            return None
        delivery = Delivery(msg, message, queue, labels)
        age_s = max(0.0, time.time() - msg.metadata.timestamp.timestamp())

        if task is None:
            if age_s > settings.unknown_task_dlq_after_s:
                unknown = UnknownTaskError.after(message.task_name, age_s)
                await self._settlement.give_up(delivery, "unknown_task", unknown)
            else:
                logger.warning(
                    "task %r (%s) is not known to this worker; offered again in %.1fs",
                    message.task_name,
                    message.task_id,
                    settings.unknown_task_delay_s,
                )
                await delivery.nak(settings.unknown_task_delay_s)
            return None

        if labels.max_age_s and age_s > labels.max_age_s:
            expired = TaskExpiredError.after(age_s, labels.max_age_s)
            await self._settlement.give_up(delivery, "expired", expired)
            return None

        if labels.limited and await self._held_back(delivery):
            return None

        if delivery.redelivered:
            try:
                delivery.attempt = await self._attempts.bump(message.task_id, "starts") + 1
            except Exception as exc:  # Redis down: try again later rather than guess
                logger.warning("cannot count attempts of %s: %s", message.task_id, exc)
                await delivery.nak(settings.redelivery_delay_s)
                return None
            retry = labels.retry
            allowed = (retry.max_retries if retry.retry_on_error else 0) + 1
            if delivery.attempt > allowed + settings.max_redeliveries:
                poison = PoisonTaskError.after(delivery.attempt)
                await self._settlement.give_up(delivery, "poison", poison)
                return None
        message.labels[ATTEMPT] = delivery.attempt
        message.labels[REDELIVERED] = delivery.redelivered
        return delivery

    async def _held_back(self, delivery: Delivery) -> bool:
        """Apply the task's rate and concurrency limits; True if it was deferred."""
        message = delivery.message
        try:
            scope = delivery.labels.limit_scope(message.kwargs)
        except LabelError as exc:
            await self._settlement.give_up(delivery, "invalid", InvalidTaskError(str(exc)))
            return True
        holder = Holder(message.task_name, message.task_id, scope)
        try:
            wait_s, window = await self._throttle.admit(holder, delivery.labels)
        except Exception as exc:  # Redis down: the limit cannot be checked; later
            logger.warning("cannot check limits of %s: %s", message.task_id, exc)
            await delivery.nak(self._settings().redelivery_delay_s)
            return True
        if wait_s is not None:
            await delivery.nak(wait_s)  # deferred, not failed: no attempt is counted
            return True
        delivery.limit_scope = scope
        if delivery.labels.concurrency is not None:
            delivery.holds_slot = True
            delivery.on_settle.append(lambda _: self._release_later(holder))
        if window is not None:
            message.labels["rate_window"] = window  # which window this start counted in
        return False

    def _release_later(self, holder: Holder) -> None:
        """Free a concurrency slot once its delivery is settled (it expires by itself if this
        write is lost)."""
        release = asyncio.ensure_future(self._throttle.release(holder))
        release.add_done_callback(_log_failure)

    def mark(self, admitted: list[Delivery], worker_id: str) -> Marking:
        """Queue the batch's STARTED write for the next round trip, at once (see `start`)."""
        now = time.time()
        transitions = [
            Transition(
                d.task_id,
                d.message.task_name,
                TaskState.STARTED,
                "start",
                {
                    "started_at": now,
                    "worker": worker_id,
                    "ack": d.msg.reply or "",
                    # When the message entered the stream: the queue wait's start even when the
                    # sender's PENDING write lands after this one.
                    "enqueued_at": d.msg.metadata.timestamp.timestamp(),
                },
                dispatch=d.labels.dispatch,
                attempt=d.attempt,
                seq=d.sequence,
            )
            for d in admitted
        ]
        return Marking(transitions, self._writes.send(transitions))

    async def start(self, admitted: list[Delivery], marking: Marking) -> list[Delivery]:
        """The deliveries of a batch `mark`ed STARTED that may run. A message whose record says
        it already ran to its end (a redelivery after its outcome was saved, a cancel while it
        was queued) or that a later dispatch replaced is acked here without running."""
        try:
            written = await self._writes.applied(marking.transitions, marking.sent)
        except Exception as exc:  # Redis down: the outcome could not be saved either
            logger.warning("cannot record %d task start(s): %s", len(admitted), exc)
            await self._uncount_starts(admitted)
            for delivery in admitted:
                await delivery.nak(self._settings().redelivery_delay_s)
            return []
        runnable: list[Delivery] = []
        for delivery, outcome in zip(admitted, written, strict=True):
            if outcome.code in ("finished", "stale"):
                logger.info(
                    "task %s not run: %s (record is %s)",
                    delivery.task_id,
                    "it already ended" if outcome.code == "finished" else "dispatched anew since",
                    outcome.before,
                )
                if outcome.code == "finished" and outcome.before is TaskState.CANCELLED:
                    try:
                        stored = await self._settlement.cancelled_run_without_outcome(delivery)
                    except Exception as exc:  # Redis away: the message comes back later
                        logger.warning("cannot store %s's cancellation: %s", delivery.task_id, exc)
                        await delivery.nak(self._settings().redelivery_delay_s)
                        continue
                    if stored is not None:
                        await self._events().publish(
                            TaskEvent.ended_by(delivery.task_id, TaskState.CANCELLED, stored),
                            delivery.labels.client_id,
                        )
                if outcome.code == "stale" or await self._settlement.tell_workflow(delivery):
                    await delivery.ack()
                continue
            runnable.append(delivery)
            if outcome.applied:
                await self._events().publish_body(
                    event_body(delivery.task_id, _STARTED), delivery.labels.client_id
                )
        return runnable

    async def _uncount_starts(self, admitted: list[Delivery]) -> None:
        """Starts that could not be recorded never ran: they must not count towards being set
        aside as poison (a Redis without its replicas for a while must not turn waiting tasks
        into poison). The next delivery of each message counts a start on admission
        (`_admit`), so one is taken off now: that delivery gets the attempt number this one
        had."""
        try:
            await self._attempts.take_back_starts([d.task_id for d in admitted])
        except Exception as exc:  # Redis away: the counts stay one too high
            logger.warning("cannot take back %d unrecorded start(s): %s", len(admitted), exc)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("concurrency slot not released (it expires): %s", future.exception())
