"""JetStream publishes whose answers (PubAcks) come back on one subscription, so a sender can put
many publishes on the wire before the first answer is in (`kiq_many`), and a lone publish costs
a future, not a request of its own.

Unlike nats-py's `publish_async`, a refusal is answered too: the future fails with the error
`js.publish` would raise (`ServiceUnavailableError` for a full stream, `NoStreamResponseError`
when no stream takes the subject), so a caller learns at once why a publish failed instead of
waiting for an answer that never comes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError, NoStreamResponseError

from src.engine.core import tracing

_STATUS = "Status"
# How often answers that are overdue are failed.
_SWEEP_S = 0.1
_NO_RESPONDERS = "503"


class PubAcks:
    """Publishes with a reply subject of their own under one wildcard subscription."""

    def __init__(self, answer_s: Callable[[], float]) -> None:
        self._nc: NATS | None = None
        self._prefix = ""
        self._answer_s = answer_s
        self._waiting: dict[str, tuple[asyncio.Future[Any], float]] = {}
        self._tokens = itertools.count()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def publish(
        self, nc: NATS, subject: str, body: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        """Put one publish on the wire; the future holds its PubAck (a dict) or its error,
        `TimeoutError` if no answer came within `answer_s` (give or take a sweep).
        A future nobody waits for any more should be cancelled (it is then forgotten)."""
        if nc is not self._nc:
            await self._subscribe(nc)
        token = str(next(self._tokens))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._waiting[token] = (answer, loop.time() + self._answer_s())
        answer.add_done_callback(lambda _: self._waiting.pop(token, None))
        if self._sweep is None or self._sweep_loop is not loop:  # (a new loop: a new timer)
            self._sweep, self._sweep_loop = loop.call_later(_SWEEP_S, self._expire), loop
        if tracing.enabled():  # the publish span lasts until the answer (or its failure)
            span = tracing.start_call("publish", "send", subject, _span_attributes(body, headers))
            if span is not None:
                answer.add_done_callback(
                    lambda done: tracing.end_call(span, tracing.failure_of(done))
                )
        try:
            await nc.publish(subject, body, reply=self._prefix + token, headers=headers)
        except BaseException:
            answer.cancel()
            raise
        return answer

    async def _subscribe(self, nc: NATS) -> None:
        """One subscription per connection (a new broker connection gets a new one). Set up
        before its first await, so concurrent first publishes share it; their publishes are
        queued behind its SUB on the same connection."""
        self._nc, self._prefix = nc, nc.new_inbox() + "."
        try:
            await nc.subscribe(self._prefix + "*", cb=self._answered)
        except BaseException:
            self._nc = None
            raise

    def _expire(self) -> None:
        """Fail the answers overdue: one timer for all publishes, not one wait each (a
        `wait_for` per publish cost a tenth of a sender's time)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for token, (answer, deadline) in list(self._waiting.items()):
            if answer.get_loop() is not loop:  # from a loop that is gone: nobody waits
                del self._waiting[token]
            elif deadline <= now and not answer.done():
                answer.set_exception(TimeoutError())
        self._sweep = loop.call_later(_SWEEP_S, self._expire) if self._waiting else None

    async def _answered(self, msg: Msg) -> None:
        waiting = self._waiting.get(msg.subject[len(self._prefix) :])
        if waiting is None or waiting[0].done():
            return
        answer = waiting[0]
        if not msg.data:
            if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
                answer.set_exception(NoStreamResponseError())
            else:
                answer.set_exception(APIError(description=f"empty answer {msg.headers!r}"))
            return
        try:
            reply = orjson.loads(msg.data)
            if "error" in reply:
                APIError.from_error(reply["error"])  # raises the error's own class
            answer.set_result(reply)
        except Exception as exc:
            answer.set_exception(exc)


def _span_attributes(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {"messaging.message.body.size": len(body)}
    if (msg_id := headers.get("Nats-Msg-Id")) is not None:
        attributes["messaging.message.id"] = msg_id
    return attributes
