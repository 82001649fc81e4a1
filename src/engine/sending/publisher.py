"""Publishing tasks to JetStream, with their PENDING record written alongside.

- Every publish carries `Nats-Msg-Id: <task id>:<dispatch>`, so a re-send of the same dispatch
  is dropped by the server's de-duplication while a later dispatch (a retry by id) is not.
- A task due later (`delay`, `eta`) is published as a JetStream message schedule (`@at`) into
  the schedules stream, which moves it into the task stream when due: no worker holds it.
- The record is written in the same loop turn as the publish, batched with every other write;
  the record script orders the writes by dispatch, so it does not matter which lands first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError, ServiceUnavailableError
from taskiq.message import BrokerMessage, TaskiqMessage

from src.engine.core.errors import MessageTooLargeError, StreamFullError
from src.engine.core.labels import LabelDefaults, TaskLabels, due_at
from src.engine.core.layout import Layout
from src.engine.core.wire import encode, source_of
from src.engine.sending.label_reads import LABEL_READS
from src.engine.sending.pubacks import PubAcks
from src.engine.state.records import TaskRecords

logger = logging.getLogger("taskjet.sending")

# How long the schedules stream keeps the due copy of a delayed task after moving it on.
DUE_COPY_TTL = "5m"
# Room in a NATS message for the headers around a task's body.
_HEADROOM = 1024
# JetStream's answers when a stream is at its limits (discard=new): maximum messages / bytes.
_STREAM_FULL = frozenset({10077, 10078})
_ID_IN_PROCESS = 10158  # "duplicate message id is in process": its first send not yet stored
_FIRST_RETRY_S = 0.05
_LAST_RETRY_S = 1.0
# Tasks of a `kick_many` published before their answers are awaited and their records written.
_CHUNK = 250


def rfc3339(timestamp: float) -> str:
    """Whole seconds, rounded up: a schedule never fires before the time asked for."""
    moment = datetime.fromtimestamp(math.ceil(timestamp), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Publisher:
    """Sends tasks: one at a time (`kick`), many at once (`kick_many`), or again (`redispatch`)."""

    def __init__(
        self,
        *,
        nc: Callable[[], NATS],
        layout: Callable[[], Layout],
        records: TaskRecords,
        defaults: Callable[[], LabelDefaults],
        max_payload: Callable[[], int],
        retry_s: Callable[[], float],
        answer_s: Callable[[], float],
    ) -> None:
        self._nc = nc
        self._pubacks = PubAcks(answer_s)
        self._layout = layout
        self._records = records
        self._defaults = defaults
        self._max_payload = max_payload
        self._retry_s = retry_s

    async def kick(self, message: BrokerMessage) -> None:
        """Publish one task, then write its PENDING record (batched with every other write of
        the loop turn). The record comes second so that a task that could not be queued never
        has one saying it waits."""
        source = source_of(message)
        labels = LABEL_READS.read(source.labels, self._defaults())
        now = time.time()
        due = due_at(source.labels, now)
        await self._publish(source.task_id, message.message, labels, due)
        try:
            await self._records.submit(
                self._records.queued(
                    source, labels.queue, message.message, queued_at=now, due_at=due
                )
            )
        except Exception as exc:  # queued: only its record is missing until a worker starts it
            logger.warning("record of task %s not written: %s", source.task_id, exc)

    async def kick_many(self, messages: list[BrokerMessage]) -> None:
        """Publish many tasks without waiting for each answer in turn (`kiq_many`), then write
        the records of those that were queued, a round trip per `_CHUNK` tasks: while one
        chunk's answers and records are on their way, the next chunk is published. A publish
        refused or not answered goes the way of a lone one (`_publish`: sent again while the
        stream may come back); raises the first failure after every publish was attempted."""
        defaults = self._defaults()
        now = time.time()
        sends: list[_Send] = []
        for message in messages:
            source = source_of(message)
            labels = LABEL_READS.read(source.labels, defaults)
            sends.append(_Send(source, message.message, labels, due_at(source.labels, now)))
        await asyncio.gather(
            *(self._send(sends[i : i + _CHUNK], now) for i in range(0, len(sends), _CHUNK))
        )
        failures = [s.failure for s in sends if s.failure is not None]
        if failures:
            raise failures[0]

    async def _send(self, sends: list[_Send], now: float) -> None:
        """Publish a chunk of `kick_many`, then record what was queued; each send's failure is
        kept on it, never raised here."""
        nc = self._nc()
        for send in sends:
            try:
                subject, headers = self._address(
                    send.source.task_id, send.body, send.labels, send.due
                )
                send.answer = await self._pubacks.publish(nc, subject, send.body, headers)
            except Exception as exc:
                send.failure = exc
        answers = [s.answer for s in sends if s.answer is not None]
        if answers:
            await asyncio.wait(answers)  # each fails by itself after `answer_s` (PubAcks)
        again = [s for s in sends if not s.settled()]
        outcome = await asyncio.gather(
            *(self._publish(s.source.task_id, s.body, s.labels, s.due) for s in again),
            return_exceptions=True,
        )
        for send, result in zip(again, outcome, strict=True):
            send.failure = result if isinstance(result, Exception) else None
        written = [
            self._records.queued(s.source, s.labels.queue, s.body, queued_at=now, due_at=s.due)
            for s in sends
            if s.failure is None
        ]
        try:
            await self._records.apply(written)
        except Exception as exc:
            logger.warning("records of %d tasks not written: %s", len(written), exc)

    async def redispatch(self, message: TaskiqMessage, queue: str | None = None) -> None:
        """Queue a known task again under its next dispatch number (retry by id, requeue,
        republish): published first, then recorded, so a failed publish leaves the record as
        it was; the record script starts the record over for the new dispatch."""
        labels = LABEL_READS.read(message.labels, self._defaults())
        queue = queue or labels.queue
        payload = encode(message)
        now = time.time()
        await self._publish(message.task_id, payload, labels, None, queue=queue)
        await self._records.apply([self._records.queued(message, queue, payload, queued_at=now)])

    def _check_size(self, body: bytes) -> None:
        limit = self._max_payload() - _HEADROOM
        if len(body) > limit:
            raise MessageTooLargeError(
                f"the task's message is {len(body)} bytes, over the {limit} bytes a NATS "
                "message may carry here: pass large inputs by reference instead (a URL, a "
                "key, or an object in a JetStream object store, as tasks store their own files "
                "with `artifacts.put`)"
            )

    def _address(
        self,
        task_id: str,
        body: bytes,
        labels: TaskLabels,
        due: float | None,
        queue: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Where a task is published, and its headers."""
        self._check_size(body)
        layout = self._layout()
        queue = queue or labels.queue
        msg_id = layout.msg_id(task_id, labels.dispatch)
        if due is not None and due > time.time():
            # Held by the server, not by a worker: no slot, no unacked message meanwhile.
            return layout.delayed_subject(task_id), {
                "Nats-Msg-Id": msg_id,
                "Nats-Schedule": f"@at {rfc3339(due)}",
                "Nats-Schedule-Target": layout.due_subject(queue, labels.lane),
                "Nats-Schedule-TTL": DUE_COPY_TTL,
            }
        return layout.task_subject(queue, labels.lane), {"Nats-Msg-Id": msg_id}

    async def _publish(
        self,
        task_id: str,
        body: bytes,
        labels: TaskLabels,
        due: float | None,
        *,
        queue: str | None = None,
    ) -> None:
        """Publish, riding out a cluster's leader election: a publish that got no answer is
        sent again, with the same `Nats-Msg-Id` (so never twice in the stream), for up to
        `TASKJET_PUBLISH_RETRY_S`. A full stream is not retried: it says so."""
        subject, headers = self._address(task_id, body, labels, due, queue)
        layout = self._layout()
        deadline = time.monotonic() + self._retry_s()
        pause_s = _FIRST_RETRY_S
        while True:
            try:
                answer = await self._pubacks.publish(self._nc(), subject, body, headers)
                try:
                    await answer  # fails with TimeoutError after `answer_s` (PubAcks)
                except TimeoutError:
                    raise NatsTimeoutError from None
                return
            except ServiceUnavailableError as exc:
                if exc.err_code in _STREAM_FULL:
                    raise StreamFullError(
                        f"the task queue (stream {layout.stream}) is full: {exc.description} "
                        "(TASKJET_STREAM_MAX_MSGS / TASKJET_STREAM_MAX_BYTES); nothing queued "
                        "was dropped: try again later"
                    ) from None
                failure: Exception = exc
            except APIError as exc:
                if exc.err_code != _ID_IN_PROCESS:
                    raise
                # The first send of this id is still being stored (an election was under way):
                # asking again shortly gets its outcome, as a duplicate or as stored.
                failure = exc
            except (NoStreamResponseError, NoRespondersError, NatsTimeoutError) as exc:
                failure = exc
            if time.monotonic() + pause_s > deadline:
                raise failure
            logger.warning(
                "publish of task %s not answered (%r); sending it again", task_id, failure
            )
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, _LAST_RETRY_S)


@dataclass(slots=True)
class _Send:
    """One task of a `kick_many`: what is sent, and how it went."""

    source: TaskiqMessage
    body: bytes
    labels: TaskLabels
    due: float | None
    answer: asyncio.Future[Any] | None = None
    failure: Exception | None = None

    def settled(self) -> bool:
        """Stored, or failed before reaching the wire; otherwise (refused, or not answered in
        time) it is sent again. Called once its answer is in."""
        answer = self.answer
        return answer is None or (not answer.cancelled() and answer.exception() is None)
