"""`python -m bench --tracing`: the sink stands in for a collector and takes real OTLP exports."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.trace_sink import TraceSink, tracing_env


async def test_sink_takes_otlp_exports() -> None:
    sink = TraceSink()
    endpoint = await sink.start()
    try:
        assert tracing_env(endpoint)["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))

        def export() -> None:
            with provider.get_tracer("test").start_as_current_span("one"):
                pass
            provider.shutdown()

        await asyncio.to_thread(export)
        async with httpx.AsyncClient() as client:  # keep-alive: two requests, one connection
            for _ in range(2):
                assert (await client.post(f"{endpoint}/v1/traces", content=b"x")).status_code == 200
    finally:
        await sink.stop()
    assert sink.requests == 3
    assert sink.bytes > 2


def test_tracing_option_reaches_the_run_and_its_report() -> None:
    from bench.cli import options, parser
    from bench.report import _tracing_line

    assert options(parser().parse_args(["--tracing"])).tracing is True
    assert options(parser().parse_args([])).tracing is False
    meta = {"options": {"tracing": True}, "tracing": {"requests": 12, "bytes": 2_500_000}}
    (line,) = _tracing_line(meta)
    assert "12 requests, 2.5 MB" in line
    assert _tracing_line({"options": {"tracing": False}}) == []
