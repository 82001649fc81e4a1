"""taskjet-only figures: enqueue from Python, HTTP submit, worker idle RSS.

They run after the side-by-side phases, on a stream of their own that no worker consumes, so
the sending side is measured alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.http_load import load, request_once
from bench.measure import median
from bench.procs import spawn
from bench.systems.base import Context, python
from bench.systems.taskiq_peers import TaskiqNats
from bench.systems.taskjet import bench_settings, settings_env
from bench.workloads import Workload
from src.config import Settings
from src.embedded import free_port

DEFAULT_BODIES = {
    "/process": {"data": {"n": 1}},
    "/api/v1/tasks": {"task": "src.tasks.example:example_task", "args": [{"n": 1}]},
}


async def taskjet_extras(
    ctx: Context, opts: Any, logs: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    from bench.systems import taskjet_tasks
    from src.tasks.broker import broker

    tag = f"x{uuid.uuid4().hex[:6]}"
    overrides: dict[str, Any] = {}
    if "auth" in Settings.model_fields:  # the HTTP API may want keys; the benchmark does not
        overrides["auth"] = "disabled"
    if "api_submit_rate" in Settings.model_fields:
        # The per-key quota is checked on every request, but set high enough that it never
        # answers 429: the figure is what the server can accept, not what the default allows.
        overrides["api_submit_rate"] = "1000000/s"
    settings = bench_settings(ctx, tag, db=5, **overrides)
    broker.configure(settings)
    await broker.startup()
    extras: dict[str, Any] = {"enqueue": {}, "http": []}
    try:
        n = opts.extra_tasks
        noop = taskjet_tasks.TASKS["noop"]
        layout = broker.layout
        payload = b'{"task_id":"%s","task_name":"bench.noop","labels":{},"args":[],"kwargs":{}}'

        async def sequential() -> None:
            for _ in range(n // 4):
                await noop.kiq()

        async def concurrent() -> None:
            for start in range(0, n, 1000):
                await asyncio.gather(*(noop.kiq() for _ in range(min(1000, n - start))))

        async def batched() -> None:
            for start in range(0, n, 1000):
                await noop.kiq_many([() for _ in range(min(1000, n - start))])

        async def raw_publish() -> None:
            subject = layout.task_subject(settings.default_queue)
            for start in range(0, n, 1000):
                await asyncio.gather(
                    *(
                        broker.js.publish(
                            subject,
                            payload % uuid.uuid4().hex.encode(),
                            headers={"Nats-Msg-Id": uuid.uuid4().hex},
                        )
                        for _ in range(min(1000, n - start))
                    )
                )

        figures = (
            ("kiq, one await after another", sequential, n // 4),
            ("kiq, 1000 in flight (asyncio.gather)", concurrent, n),
            ("kiq_many, batches of 1000", batched, n),
            ("reference: raw nats-py js.publish, 1000 in flight", raw_publish, n),
        )
        for label, action, count in figures:
            rates = []
            for _ in range(opts.repeat):
                await broker.js.purge_stream(layout.stream)
                started = time.perf_counter()
                await action()
                rates.append(count / (time.perf_counter() - started))
            extras["enqueue"][label] = {"tasks": count, "runs": rates, "median": median(rates)}
            log(f"taskjet enqueue, {label}: {median(rates):,.0f} tasks/s")
        await broker.js.purge_stream(layout.stream)
        if "taskiq-nats" in opts.systems:
            extras["peer_enqueue"] = await taskiq_nats_enqueue(ctx, n, opts.repeat, log)
        try:
            extras["http"] = await http_submit(settings, opts, logs, log)
        except Exception as exc:
            log(f"HTTP submit not measured: {exc!r}")
            extras["http"] = [{"path": "*", "probe_status": 0, "notice": repr(exc)}]
        await broker.js.purge_stream(layout.stream)
    finally:
        await broker.shutdown()
    return extras


async def taskiq_nats_enqueue(
    ctx: Context, n: int, repeat: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """taskiq-nats' `kiq` with 1000 in flight, measured as taskjet's is (its own stream, no
    worker): the figure the sending goal compares with."""
    peer = TaskiqNats(ctx, f"x{uuid.uuid4().hex[:6]}")
    await peer.start()
    noop = Workload("noop", "")
    try:
        rates = []
        for _ in range(repeat):
            started = time.perf_counter()
            for start in range(0, n, 1000):
                await asyncio.gather(*(peer.send(noop) for _ in range(min(1000, n - start))))
            rates.append(n / (time.perf_counter() - started))
            await peer.broker.js.purge_stream(peer.config()["stream"])  # type: ignore[attr-defined]
    finally:
        await peer.stop()
    log(f"taskiq-nats enqueue, kiq, 1000 in flight: {median(rates):,.0f} tasks/s")
    return {
        "kiq, 1000 in flight (asyncio.gather)": {"tasks": n, "runs": rates, "median": median(rates)}
    }


async def http_submit(
    settings: Settings, opts: Any, logs: Path, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Requests/s one uvicorn process (as in docker-entrypoint.sh) accepts at each path."""
    port = free_port()
    command = [
        python(), "-m", "uvicorn", "src.api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        "--log-level", opts.log_level.lower(),
    ]  # fmt: skip
    server = spawn("api", command, settings_env(settings), logs / "api.log")
    figures: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if not server.alive():
                raise RuntimeError(f"API server exited:\n{server.output()}")
            try:
                await request_once("127.0.0.1", port, "/health", b"", method="GET")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"API server not up in 60s:\n{server.output()}") from None
                await asyncio.sleep(0.1)
        for path in opts.http_paths:
            raw = opts.http_bodies.get(path)
            body = (raw or json.dumps(DEFAULT_BODIES.get(path, {}))).encode()
            status, answer = await request_once("127.0.0.1", port, path, body)
            figure: dict[str, Any] = {"path": path, "probe_status": status}
            if not 200 <= status < 300:
                why = "no such endpoint" if status == 404 else answer[:300].decode(errors="replace")
                notice = f"HTTP submit to POST {path} skipped: the server answers {status} ({why})"
                if status == 422:
                    notice += "; give a body with --http-body PATH=JSON"
                print(f"notice: {notice}", flush=True)
                figure["notice"] = notice
                figures.append(figure)
                continue
            rates = []
            for _ in range(opts.repeat):
                result = await load(
                    "127.0.0.1",
                    port,
                    path,
                    body,
                    seconds=opts.http_seconds,
                    connections=opts.http_connections,
                )
                rates.append(result.rate)
                bad = {k: v for k, v in result.statuses.items() if not 200 <= k < 300}
                if bad or result.errors:
                    figure.setdefault("problems", []).append(
                        {"statuses": bad, "connection_errors": result.errors}
                    )
            figure.update(runs=rates, median=median(rates), connections=opts.http_connections)
            figures.append(figure)
            log(f"taskjet HTTP POST {path}: {median(rates):,.0f} requests/s")
    finally:
        server.stop()
    return figures
