"""The W3C trace context a task carries, and the spans around its publish and its run.

A task's message has a `trace` label holding the W3C headers (`traceparent`, `tracestate`) of
the span that sent it, so the worker's `run <task>` span joins the sender's trace: the HTTP
request, `publish <task>`, every run (retries too, which re-deliver the same message), and
tasks sent from inside a run.

Off (the default, and always without the `otel` extra) every function here returns at its
first line and allocates nothing; `src.engine.telemetry` turns it on from the `OTEL_*`
variables by handing over a tracer. Only the OpenTelemetry API is used here, never the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

TRACE = "trace"
_OFF: AbstractContextManager[Any] = contextlib.nullcontext()
_tracer: Tracer | None = None


def enable(tracer: Tracer | None) -> None:
    """Trace with `tracer` from now on (None: stop tracing)."""
    global _tracer  # noqa: PLW0603 - one switch for the whole process, read on every send
    _tracer = tracer


def enabled() -> bool:
    return _tracer is not None


def publishing(task_name: str, count: int = 1) -> AbstractContextManager[Any]:
    """The `publish <task>` span (kind producer) around a dispatch; its context is the one
    `inject` puts on the messages sent inside it."""
    if _tracer is None:
        return _OFF
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.operation.type": "publish",
        "taskjet.task.name": task_name,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    from opentelemetry.trace import SpanKind

    return _tracer.start_as_current_span(
        f"publish {task_name}", kind=SpanKind.PRODUCER, attributes=attributes
    )


def calling(
    operation: str, kind: str, destination: str, extra: Mapping[str, Any] | None = None
) -> AbstractContextManager[Any]:
    """A client span around one NATS call: `<operation> <destination>` (`publish
    taskjet.tasks.default`, `ack ...`), `kind` its `messaging.operation.type` (`send`,
    `settle`); an exception leaving it marks it failed. A call outside any trace is not
    recorded (see `telemetry._in_traces_only`)."""
    span = start_call(operation, kind, destination, extra)
    if span is None:
        return _OFF
    from opentelemetry import trace

    return trace.use_span(span, end_on_exit=True)


def start_call(
    operation: str, kind: str, destination: str, extra: Mapping[str, Any] | None = None
) -> Span | None:
    """Like `calling`, for a call whose answer comes later: the caller ends the span with
    `end_call`. None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    return _tracer.start_span(
        f"{operation} {destination}",
        kind=SpanKind.CLIENT,
        attributes=_call_attributes(operation, kind, destination, extra),
    )


def end_call(span: Span, failure: BaseException | None) -> None:
    if failure is not None:
        from opentelemetry.trace import StatusCode

        span.record_exception(failure)
        span.set_status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}")
    span.end()


def _call_attributes(
    operation: str, kind: str, destination: str, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {
        "messaging.system": "nats",
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.destination.name": destination,
        **(extra or {}),
    }


def inject(labels: dict[str, Any], task_id: str) -> None:
    """Put the current trace context on a message's labels (and its id on the current span)."""
    if _tracer is None:
        return
    from opentelemetry import propagate, trace

    span = trace.get_current_span()
    if span.is_recording() and task_id:
        span.set_attribute("taskjet.task.id", task_id)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if carrier:
        labels[TRACE] = carrier


def extract(labels: Mapping[str, Any]) -> Context | None:
    """The sender's context from a message's labels; None when it has none (or a malformed
    one: a bad trace label never fails a task)."""
    carrier = labels.get(TRACE)
    if not isinstance(carrier, dict):
        return None
    from opentelemetry import propagate

    return propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})


def start_run(task_name: str, parent: Context | None, attributes: Mapping[str, Any]) -> Span | None:
    """The `run <task>` span (kind consumer), made current in the running asyncio task; None
    when tracing is off. The caller ends it when the delivery is settled."""
    if _tracer is None:
        return None
    from opentelemetry import context, trace
    from opentelemetry.trace import SpanKind

    span = _tracer.start_span(
        f"run {task_name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )
    # Never detached: each message runs in an asyncio task of its own, whose context ends
    # with it; the task's own function runs in a copy of it (so its spans are children).
    context.attach(trace.set_span_in_context(span, parent))
    return span


def log_fields() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for JSON log lines."""
    if _tracer is None:
        return {}
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }


def failure_of(done: asyncio.Future[Any]) -> BaseException | None:
    """What a finished future failed with (a cancellation counts), for `end_call`."""
    if done.cancelled():
        return asyncio.CancelledError()
    return done.exception()
