"""Client spans for the NATS calls a task makes on its way: publishes and acknowledgements.

nats-py has no OpenTelemetry instrumentation, so this is a small one, in the manner of
`opentelemetry-instrumentation-redis`: `instrument()` wraps the few nats-py methods on a task's
path when tracing is turned on (`src.engine.telemetry`), once per process:

- `JetStreamContext.publish` and `.publish_async`: `publish <subject>` (a task sent, a dead
  letter kept), from the call until the server's acknowledgement;
- `Msg.ack`, `.nak` and `.term`: `ack <subject>`, ... (a delivery settled by the worker).

Task events go out with a core NATS publish, which `Msg.ack` also uses underneath: they get
their span where they are sent (`EventBus.publish`, through `calling`), not here. Spans follow
the OpenTelemetry messaging conventions (`messaging.system=nats`, `messaging.destination.name`,
`messaging.operation.name` and `.type`) and are children of whatever span is current: a call
made outside any trace is not recorded (the sampler drops client spans without a parent).
Tracing off, nothing is wrapped and nats-py runs untouched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any

from src.engine.core import tracing

# (class, method name, the original function), for `uninstrument`.
_wrapped: list[tuple[type, str, Any]] = []


def instrument() -> None:
    """Wrap the nats-py methods (once; a second call changes nothing)."""
    if _wrapped:
        return
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    _wrap(JetStreamContext, "publish", _publish)
    _wrap(JetStreamContext, "publish_async", _publish_async)
    for operation in ("ack", "nak", "term"):
        _wrap(Msg, operation, functools.partial(_settle, operation))


def uninstrument() -> None:
    """Put the original methods back."""
    while _wrapped:
        cls, name, original = _wrapped.pop()
        setattr(cls, name, original)


def _wrap(cls: type, name: str, wrapper: Callable[..., Any]) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kw: Any) -> Any:
        return await wrapper(original, self, *args, **kw)

    _wrapped.append((cls, name, original))
    setattr(cls, name, method)


def _message_id(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    msg_id = headers.get("Nats-Msg-Id") if headers else None
    return {"messaging.message.id": msg_id} if isinstance(msg_id, str) else {}


async def _publish(
    original: Any, js: Any, subject: str, payload: bytes = b"", *args: Any, **kw: Any
) -> Any:
    extra = {"messaging.message.body.size": len(payload), **_message_id(kw.get("headers"))}
    with tracing.calling("publish", "send", subject, extra):
        return await original(js, subject, payload, *args, **kw)


async def _publish_async(
    original: Any, js: Any, subject: str, payload: bytes = b"", *args: Any, **kw: Any
) -> asyncio.Future[Any]:
    """The span lasts until the server acknowledges the message (or the wait is given up)."""
    extra = {"messaging.message.body.size": len(payload), **_message_id(kw.get("headers"))}
    span = tracing.start_call("publish", "send", subject, extra)
    try:
        future: asyncio.Future[Any] = await original(js, subject, payload, *args, **kw)
    except BaseException as exc:
        if span is not None:
            tracing.end_call(span, exc)
        raise
    if span is not None:
        future.add_done_callback(lambda done: tracing.end_call(span, tracing.failure_of(done)))
    return future


async def _settle(operation: str, original: Any, msg: Any, *args: Any, **kw: Any) -> Any:
    with tracing.calling(operation, "settle", msg.subject, _message_id(msg.headers)):
        return await original(msg, *args, **kw)
