"""The trace context on a task's labels: nothing at all while tracing is off; with it on, the
publish span's context travels and the run joins it, and a bad trace label never fails a task."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from src.engine.core import tracing


def test_off_costs_nothing() -> None:
    assert not tracing.enabled()
    # The same do-nothing context manager every time: no allocation per task.
    assert tracing.publishing("a") is tracing.publishing("b")
    labels: dict[str, Any] = {"queue_name": "q"}
    tracing.inject(labels, "id")
    assert labels == {"queue_name": "q"}
    assert tracing.start_run("a", None, {}) is None
    assert tracing.log_fields() == {}


def test_publish_context_travels_to_the_run(exported: InMemorySpanExporter) -> None:
    labels: dict[str, Any] = {}
    with tracing.publishing("tasks:send"):
        tracing.inject(labels, "t1")
    (publish,) = exported.get_finished_spans()
    assert publish.name == "publish tasks:send"
    assert publish.kind is SpanKind.PRODUCER
    assert publish.attributes is not None
    assert publish.attributes["taskjet.task.id"] == "t1"
    assert labels[tracing.TRACE]["traceparent"].split("-")[1] == format(
        publish.context.trace_id, "032x"
    )

    def run() -> dict[str, str]:
        span = tracing.start_run("tasks:send", tracing.extract(labels), {"taskjet.task.id": "t1"})
        assert span is not None
        fields = tracing.log_fields()
        span.end()
        return fields

    fields = contextvars.copy_context().run(run)
    runs = [s for s in exported.get_finished_spans() if s.name == "run tasks:send"]
    (span,) = runs
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert span.parent.span_id == publish.context.span_id
    assert span.context.trace_id == publish.context.trace_id
    assert fields == {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
    }


def test_a_run_is_current_only_in_its_own_context(exported: InMemorySpanExporter) -> None:
    contextvars.copy_context().run(lambda: tracing.start_run("x", None, {}))
    assert tracing.log_fields() == {}


@pytest.mark.parametrize(
    "bad",
    ["00-abc", ["00-1-2-01"], {"traceparent": 7}, {"traceparent": "not a traceparent"}, None],
)
def test_a_bad_trace_label_starts_a_trace_of_its_own(
    exported: InMemorySpanExporter, bad: object
) -> None:
    def run() -> None:
        span = tracing.start_run("x", tracing.extract({tracing.TRACE: bad}), {})
        assert span is not None
        span.end()

    contextvars.copy_context().run(run)
    (span,) = exported.get_finished_spans()
    assert span.parent is None
