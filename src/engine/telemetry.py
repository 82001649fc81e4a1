"""Tracing and machine-readable logs for a process: turned on here, once, at its start.

Tracing follows only the standard OpenTelemetry variables, and needs the `otel` extra
(`pip install 'taskjet[otel]'`):

- `OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP, or gRPC when `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`
  and its exporter is installed), `console` (one JSON object per span and line, on stdout), or
  `none`. Unset, tracing is on only if `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
  is set; `OTEL_SDK_DISABLED=true` turns it off whatever the rest says.
- `OTEL_SERVICE_NAME` (default `taskjet-server`, `taskjet-worker` or `taskjet-client`),
  `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_*`, `OTEL_TRACES_SAMPLER`, `OTEL_PROPAGATORS`
  and the rest are read by the OpenTelemetry SDK itself.

Off, nothing is imported and nothing is added to the path of a task.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from src.config import Settings
from src.engine.core import logs, nats_tracing, tracing
from src.engine.worker.delivery import current_delivery
from src.engine.worker.log_context import LogContextMiddleware
from src.engine.worker.tracing import TracingMiddleware

if TYPE_CHECKING:
    from fastapi import FastAPI
    from taskiq.abc.broker import AsyncBroker

logger = logging.getLogger("taskjet.telemetry")

_provider: Any = None  # the SDK's TracerProvider once configured (None: tracing is off)
_configured = False


def _exporters(environ: os._Environ[str] | dict[str, str]) -> list[str]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    return [n.strip() for n in names.split(",") if n.strip() not in {"", "none"}]


def configure_tracing(role: str) -> bool:
    """Trace this process if the environment asks for it; True when tracing is on. Once per
    process: later calls (the API's lifespan after its factory) change nothing."""
    global _provider, _configured  # noqa: PLW0603 - one tracer provider per process
    if _configured:
        return _provider is not None
    _configured = True
    names = _exporters(os.environ)
    if not names:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        logger.warning(
            "OTEL_TRACES_EXPORTER=%s, but the OpenTelemetry SDK is not installed: "
            "pip install 'taskjet[otel]'; tracing stays off",
            ",".join(names),
        )
        return False
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"taskjet-{role}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    # Before any tracer exists (each takes the provider's sampler when it is made).
    provider.sampler = _in_traces_only(provider.sampler)
    for name in names:
        processor = _processor(name)
        if processor is not None:
            provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _instrument_libraries(provider)
    tracing.enable(provider.get_tracer("taskjet"))
    logs.add_fields(tracing.log_fields)
    _provider = provider
    logger.info("tracing on (%s), exporting to %s", role, ",".join(names))
    return True


def _in_traces_only(sampler: Any) -> Any:
    """`sampler` (the one `OTEL_TRACES_SAMPLER` names), except that a client call made outside
    any trace is not recorded: the Redis calls of heartbeats, worker reports and batched
    writes would otherwise each be a trace of one span, every few seconds, on every worker."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind

    class InTracesOnly(Sampler):
        def should_sample(self, parent_context: Any, *args: Any, **kwargs: Any) -> SamplingResult:
            kind = kwargs.get("kind", args[2] if len(args) > 2 else None)
            if kind is SpanKind.CLIENT and not (
                trace.get_current_span(parent_context).get_span_context().is_valid
            ):
                return SamplingResult(Decision.DROP)
            result: SamplingResult = sampler.should_sample(parent_context, *args, **kwargs)
            return result

        def get_description(self) -> str:
            return f"InTracesOnly{{{sampler.get_description()}}}"

    return InTracesOnly()


def _processor(name: str) -> Any:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if name == "console":  # for a developer's eyes (and tests): each span as it ends
        return SimpleSpanProcessor(
            ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
        )
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        )
        exporter: Any
        if protocol.strip() == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            except ImportError:
                logger.warning(
                    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc"
                    "; sending OTLP over HTTP instead"
                )
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter()
        return BatchSpanProcessor(exporter)
    logger.warning("OTEL_TRACES_EXPORTER %r is not supported here (otlp, console, none)", name)
    return None


def _instrument_libraries(provider: Any) -> None:
    """Redis and NATS calls become spans in the trace of whatever runs them."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    nats_tracing.instrument()


def instrument_app(app: FastAPI, settings: Settings) -> None:
    """The API server: JSON logs if asked for, and a span per HTTP request when tracing."""
    if settings.log_format == "json":
        logs.use_json(settings.log_level)
    if configure_tracing("server"):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider)


def instrument_broker(broker: AsyncBroker, settings: Settings) -> None:
    """A process starting the broker: on a worker, JSON logs with the running task's id, and
    a span per run; anywhere, tracing of what it sends."""
    worker = broker.is_worker_process
    traced = configure_tracing("worker" if worker else "client")
    if not worker:
        return
    present = {type(m) for m in broker.middlewares}
    if settings.log_format == "json":
        logs.use_json(settings.log_level)
        if LogContextMiddleware not in present:
            broker.add_middlewares(LogContextMiddleware(current_delivery.get))
    if traced and TracingMiddleware not in present:
        broker.add_middlewares(TracingMiddleware(current_delivery.get))


def flush() -> None:
    """Export the spans still buffered (a worker process exits without `atexit` handlers)."""
    if _provider is not None:
        _provider.force_flush()
