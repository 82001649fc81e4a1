"""Client spans for NATS calls: nothing wrapped while tracing is off; with it on, publishes
and acknowledgements are spans of the current trace, failures marked as errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from src.engine.core import nats_tracing, tracing
from tests.support.processes import eventually


def _methods() -> tuple[object, ...]:
    return (JetStreamContext.publish, JetStreamContext.publish_async, Msg.ack, Msg.nak, Msg.term)


ORIGINALS = _methods()


@pytest.fixture
def instrumented(exported: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    nats_tracing.instrument()
    nats_tracing.instrument()  # once is enough: wrapped once
    yield exported
    nats_tracing.uninstrument()


@pytest.fixture
async def stream(js: JetStreamContext) -> str:
    subject = f"traced.{uuid.uuid4().hex}"
    await js.add_stream(name=f"T{uuid.uuid4().hex}", subjects=[subject])
    return subject


def _calls(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


def test_off_nothing_is_wrapped_and_no_span_is_made() -> None:
    assert not tracing.enabled()
    assert _methods() == ORIGINALS
    assert tracing.calling("ack", "settle", "x") is tracing.calling("nak", "settle", "y")
    assert tracing.start_call("publish", "send", "x") is None


async def test_publishes_and_settles_are_spans_of_the_current_trace(
    instrumented: InMemorySpanExporter, js: JetStreamContext, stream: str
) -> None:
    assert JetStreamContext.publish is not ORIGINALS[0]
    parent_tracer = tracing._tracer
    assert parent_tracer is not None
    with parent_tracer.start_as_current_span("run") as run:
        await js.publish(stream, b"one", headers={"Nats-Msg-Id": "m1"})
        await (await js.publish_async(stream, b"two"))
        await (await js.publish_async(stream, b"three"))
        sub = await js.pull_subscribe(stream, durable=None)
        first, second, third = await sub.fetch(3, timeout=5)
        await first.ack()
        await second.nak(delay=30)
        await third.term()
    calls = _calls(instrumented)
    assert [s.name for s in calls] == [
        f"publish {stream}",
        f"publish {stream}",
        f"publish {stream}",
        f"ack {stream}",
        f"nak {stream}",
        f"term {stream}",
    ]
    for span in calls:
        assert span.parent is not None
        assert span.parent.span_id == run.get_span_context().span_id
        assert span.context.trace_id == run.get_span_context().trace_id
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == "nats"
        assert span.attributes["messaging.destination.name"] == stream
        assert span.status.status_code is StatusCode.UNSET
    sent = calls[0].attributes
    assert sent is not None
    assert sent["messaging.operation.type"] == "send"
    assert sent["messaging.message.id"] == "m1"
    assert sent["messaging.message.body.size"] == 3
    settled = calls[4].attributes
    assert settled is not None
    assert settled["messaging.operation.type"] == "settle"
    assert settled["messaging.operation.name"] == "nak"

    # The wrapped methods still do their work: only the nak'ed message waits to come back.
    async def settled_by_server() -> bool:
        info = await js.consumer_info(first.metadata.stream, first.metadata.consumer)
        return info.num_ack_pending == 1 and info.ack_floor.stream_seq == 1

    await eventually(settled_by_server, what="ack, nak and term applied")


async def test_a_failed_publish_is_an_error_span(
    instrumented: InMemorySpanExporter, js: JetStreamContext, stream: str
) -> None:
    nowhere = f"nowhere.{uuid.uuid4().hex}"
    with pytest.raises(NoStreamResponseError):
        await js.publish(nowhere, b"x", timeout=1)
    with pytest.raises(NoStreamResponseError):
        await (await js.publish_async(nowhere, b"x"))
    pending = await js.publish_async(stream, b"x")
    pending.cancel()  # given up on before the server answered: the span ends all the same
    await asyncio.sleep(0)
    failed, failed_async, given_up = _calls(instrumented)
    for span in (failed, failed_async):
        assert span.status.status_code is StatusCode.ERROR
        assert span.events[0].name == "exception"
    assert given_up.status.status_code is StatusCode.ERROR
    assert "CancelledError" in (given_up.status.description or "")


async def test_a_publish_async_that_fails_at_once_ends_its_span(
    instrumented: InMemorySpanExporter, js: JetStreamContext
) -> None:
    with pytest.raises(TypeError):
        await js.publish_async("x", "not bytes")  # type: ignore[arg-type]
    (span,) = _calls(instrumented)
    assert span.status.status_code is StatusCode.ERROR


def test_uninstrument_puts_the_originals_back(instrumented: InMemorySpanExporter) -> None:
    nats_tracing.uninstrument()
    assert _methods() == ORIGINALS
