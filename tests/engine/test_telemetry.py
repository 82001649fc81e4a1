"""Tracing from the HTTP request into the worker, and JSON logs, with real processes.

The API server and the worker run with `OTEL_TRACES_EXPORTER=console`, which prints each span
as one JSON object per line; the test reads both processes' output back and follows the
parent links from the HTTP request to every run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest

from src.config import Settings
from src.engine import telemetry
from src.engine.core import tracing
from src.engine.worker.tracing import outcome
from tests.api.conftest import bearer
from tests.conftest import SUBMIT_KEY, StartWorker
from tests.support.processes import Proc, eventually, spawn_server, wait_healthy

TRACED = "tests.support.observed:traced"
CHILD = "tests.support.observed:child"
MODULES = {"TASKJET_WORKER_MODULES": "src.tasks.example tests.support.observed"}


def _json_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return lines


def _spans(*procs: Proc) -> list[dict[str, Any]]:
    return [s for p in procs for s in _json_lines(p.output()) if "context" in s and "kind" in s]


def _one(spans: list[dict[str, Any]], match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    found = [s for s in spans if match(s)]
    assert len(found) == 1, found
    return found[0]


def _nats_calls(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """NATS client spans by the id of their parent span."""
    found: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["kind"] == "SpanKind.CLIENT" and span["attributes"].get("messaging.system"):
            assert span["attributes"]["messaging.system"] == "nats"
            found.setdefault(span["parent_id"], []).append(span)
    return found


async def _submit(base: str, task: str, key: str) -> str:
    async with httpx.AsyncClient(base_url=base, headers=bearer(SUBMIT_KEY)) as client:
        response = await client.post("/api/v1/tasks", json={"task": task, "kwargs": {"key": key}})
        assert response.status_code == 202, response.text
        task_id: str = response.json()["task_id"]
        return task_id


@pytest.mark.settings(retry_jitter="none")
async def test_one_trace_holds_the_request_the_publishes_and_every_run(
    env: dict[str, str], tmp_path: Path, start_worker: StartWorker, settings: Settings
) -> None:
    otel = {"OTEL_TRACES_EXPORTER": "console"}
    worker = await start_worker(
        "tests.support.observed",
        env_overrides={**otel, "OTEL_SERVICE_NAME": "wrk", "TASKJET_LOG_FORMAT": "json"},
    )
    server, base = spawn_server(
        {**env, **MODULES, **otel, "OTEL_SERVICE_NAME": "api"}, tmp_path / "server.log"
    )
    try:
        await wait_healthy(server, base)
        task_id = await _submit(base, TRACED, "t1")

        def complete() -> list[dict[str, Any]] | None:
            spans = _spans(server, worker)
            runs = [s for s in spans if s["name"] in {f"run {TRACED}", f"run {CHILD}"}]
            return spans if len(runs) == 3 else None

        spans = await eventually(complete, what="three runs traced")
    finally:
        await server.stop()
    http = _one(spans, lambda s: s["kind"] == "SpanKind.SERVER" and s["name"].startswith("POST"))
    trace_id = http["context"]["trace_id"]
    assert http["resource"]["attributes"]["service.name"] == "api"
    publish = _one(spans, lambda s: s["name"] == f"publish {TRACED}")
    assert publish["parent_id"] == http["context"]["span_id"]
    assert publish["attributes"]["taskjet.task.id"] == task_id
    runs = sorted(
        (s for s in spans if s["name"] == f"run {TRACED}"),
        key=lambda s: s["attributes"]["taskjet.task.attempt"],
    )
    assert [r["attributes"]["taskjet.task.attempt"] for r in runs] == [1, 2]
    assert [r["attributes"]["taskjet.task.outcome"] for r in runs] == ["retried", "succeeded"]
    for run in runs:  # the retry is the same message again: same parent, same trace
        assert run["parent_id"] == publish["context"]["span_id"]
        assert run["attributes"]["taskjet.task.id"] == task_id
        assert run["attributes"]["taskjet.task.queue"] == settings.default_queue
        assert run["resource"]["attributes"]["service.name"] == "wrk"
    # The first run sent `child`: its publish and run hang below that run.
    child_publish = _one(spans, lambda s: s["name"] == f"publish {CHILD}")
    assert child_publish["parent_id"] == runs[0]["context"]["span_id"]
    child_run = _one(spans, lambda s: s["name"] == f"run {CHILD}")
    assert child_run["parent_id"] == child_publish["context"]["span_id"]
    assert child_run["attributes"]["taskjet.task.outcome"] == "succeeded"
    # The runs' Redis calls are spans of the same trace.
    run_ids = {r["context"]["span_id"] for r in runs}
    redis = [s for s in spans if s["parent_id"] in run_ids and s["kind"] == "SpanKind.CLIENT"]
    assert any(s["attributes"].get("db.system") == "redis" for s in redis), redis
    # So are their NATS calls: the JetStream publish of each send (until the server's ack),
    # the settling of each delivery (the retried run's nak, the last run's ack) and the events.
    nats = _nats_calls(spans)
    (sent,) = nats[publish["context"]["span_id"]]
    subject = runs[0]["attributes"]["messaging.destination.name"]
    assert sent["name"] == f"publish {subject}"
    assert sent["attributes"]["messaging.operation.type"] == "send"
    assert sent["attributes"]["messaging.destination.name"] == subject
    assert sent["attributes"]["messaging.message.id"].startswith(task_id)
    (child_sent,) = nats[child_publish["context"]["span_id"]]
    assert child_sent["name"].startswith("publish ")
    for run, settled in zip(runs, ("nak", "ack"), strict=True):
        calls = nats[run["context"]["span_id"]]
        (settle,) = [c for c in calls if c["attributes"]["messaging.operation.type"] == "settle"]
        assert settle["name"] == f"{settled} {subject}"
        assert settle["attributes"]["messaging.operation.name"] == settled
        events = [c for c in calls if c["attributes"]["messaging.operation.type"] == "send"]
        assert events, calls  # `started`, then `retrying` or `completed`
        assert all(task_id in e["attributes"]["messaging.destination.name"] for e in events)
    (child_settle,) = [
        c
        for c in nats[child_run["context"]["span_id"]]
        if c["attributes"]["messaging.operation.type"] == "settle"
    ]
    assert child_settle["name"].startswith("ack ")
    traced_calls = [c for calls in nats.values() for c in calls]
    for span in (publish, *runs, child_publish, child_run, *redis, *traced_calls):
        assert span["context"]["trace_id"] == trace_id
    # The task's log lines name the span they were logged in.
    logged = [
        line
        for line in _json_lines(worker.output())
        if line.get("message") == "traced task running for t1"
    ]
    assert [line["attempt"] for line in logged] == [1, 2]
    assert [line["span_id"] for line in logged] == [r["context"]["span_id"][2:] for r in runs]
    assert {line["trace_id"] for line in logged} == {trace_id[2:]}


async def test_json_logs_carry_the_running_task(
    env: dict[str, str], start_worker: StartWorker, broker: Any
) -> None:
    from tests.support import observed

    worker = await start_worker(
        "tests.support.observed", env_overrides={"TASKJET_LOG_FORMAT": "json"}
    )
    handle = await observed.child.kiq("k1")
    failing = await observed.broken.kiq("k2")
    assert (await handle.wait_result(timeout=30)).return_value == "k1"
    assert (await failing.wait_result(timeout=30)).is_err

    def logged() -> list[dict[str, Any]] | None:
        lines = _json_lines(worker.output())
        return lines if any(line.get("task_id") == failing.task_id for line in lines) else None

    lines = await eventually(logged, what="JSON lines of both tasks")
    child_line = _one(lines, lambda line: line["message"] == "child task running for k1")
    assert child_line["task_id"] == handle.task_id
    assert child_line["task_name"] == CHILD
    assert child_line["attempt"] == 1
    assert child_line["level"] == "WARNING"
    assert child_line["logger"] == "tests.observed"
    assert child_line["time"].endswith("+00:00")
    broken_line = _one(lines, lambda line: line["message"] == "broken task failed for k2")
    assert broken_line["task_id"] == failing.task_id
    assert "ValueError: broken k2" in broken_line["exception"]
    # Lines of the worker outside any task carry no task id.
    assert any("task_id" not in line for line in lines)


async def test_server_logs_json(env: dict[str, str], tmp_path: Path) -> None:
    server, base = spawn_server({**env, "TASKJET_LOG_FORMAT": "json"}, tmp_path / "server.log")
    try:
        await wait_healthy(server, base)
    finally:
        await server.stop()
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines
    parsed = [orjson.loads(line) for line in lines]  # every line, uvicorn's included
    assert any(p["message"] == "Application startup complete." for p in parsed)
    assert all({"time", "level", "logger", "message"} <= p.keys() for p in parsed)


# Configuration from OTEL_* ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_exporters_follow_the_otel_variables(environ: dict[str, str], exporters: list[str]) -> None:
    assert telemetry._exporters(environ) == exporters


def test_without_the_extra_tracing_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with caplog.at_level(logging.WARNING, "taskjet.telemetry"):
        assert telemetry.configure_tracing("worker") is False
    assert "pip install 'taskjet[otel]'" in caplog.text
    assert not tracing.enabled()


def test_an_unknown_exporter_is_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "taskjet.telemetry"):
        assert telemetry._processor("zipkin") is None
    assert "'zipkin' is not supported" in caplog.text


@pytest.mark.parametrize(
    ("state", "result"),
    [
        ({}, "succeeded"),
        ({"failed": True}, "failed"),
        ({"retry_in_s": 0.5, "failed": True}, "retried"),
        ({"dead": object(), "failed": True}, "dead"),
        ({"cancel_requested": True}, "cancelled"),
        ({"save_failed": True}, "redelivered"),
    ],
)
def test_a_run_ends_with_the_workers_verdict(state: dict[str, Any], result: str) -> None:
    fields = {"dead": None, "retry_in_s": None, "cancel_requested": False, "save_failed": False}
    failed = state.pop("failed", False)
    delivery = SimpleNamespace(**{**fields, **state})
    assert outcome(delivery, failed) == result  # type: ignore[arg-type]
    # Settled while it still ran: the worker handed it back (its grace period ran out).
    assert outcome(delivery, failed, finished=False) == "handed back"  # type: ignore[arg-type]


def test_otlp_exports_in_batches_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    processor = telemetry._processor("otlp")
    try:
        assert isinstance(processor, BatchSpanProcessor)
        assert isinstance(processor.span_exporter, OTLPSpanExporter)
    finally:
        processor.shutdown()


def test_grpc_without_its_exporter_falls_back_to_http(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    with caplog.at_level(logging.WARNING, "taskjet.telemetry"):
        processor = telemetry._processor("otlp")
    try:
        assert isinstance(processor.span_exporter, OTLPSpanExporter)
    finally:
        processor.shutdown()
    assert "opentelemetry-exporter-otlp-proto-grpc" in caplog.text


def test_client_calls_outside_any_trace_are_not_recorded() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import SpanKind

    sampler = telemetry._in_traces_only(ALWAYS_ON)
    assert "AlwaysOnSampler" in sampler.get_description()
    tracer = TracerProvider(sampler=sampler).get_tracer("test")
    with tracer.start_as_current_span("heartbeat", kind=SpanKind.CLIENT) as lonely:
        assert not lonely.is_recording()
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER) as root:
        assert root.is_recording()
        with tracer.start_as_current_span("HGET", kind=SpanKind.CLIENT) as call:
            assert call.is_recording()


@pytest.mark.parametrize(
    ("launcher", "manager_says"),
    [
        (False, ("Pid of a main process", "Started process worker-1", "Workers are scheduled")),
        (True, ("starting 2 worker process(es)", "worker process 1 started", "worker process 1 (")),
    ],
    ids=["taskiq-worker", "taskjet-worker"],
)
async def test_every_line_of_a_worker_is_json_its_managers_too(
    env: dict[str, str], start_worker: StartWorker, launcher: bool, manager_says: tuple[str, ...]
) -> None:
    worker = await start_worker(
        "tests.support.observed",
        workers=2,
        env_overrides={"TASKJET_LOG_FORMAT": "json"},
        launcher=launcher,
    )
    assert await worker.stop() == 0
    lines = [line for line in worker.output().splitlines() if line.strip()]
    parsed = [orjson.loads(line) for line in lines]  # every line, the manager's included
    assert all({"time", "level", "logger", "message"} <= p.keys() for p in parsed)
    messages = [p["message"] for p in parsed]
    # The manager's own lines, from its start to its end.
    for said in manager_says:
        assert any(m.startswith(said) for m in messages), (said, messages)
