"""Capacity figures for sizing a deployment, on private servers (not run by the test suite).

- Redis memory per finished task (record, result, indexes: `used_memory` before and after);
- JetStream storage per queued task (the stream's bytes over its messages, no worker running);
- a soak run: tasks submitted over HTTP at a steady rate for `--soak-seconds` or until
  `--soak-tasks`, whichever comes first, sampling the worker's and the API server's resident
  memory; at the end every submitted task must have its result (lost tasks are counted).

    python -m bench.capacity                                  # 10,000 tasks, 1 h soak at 150/s
    python -m bench.capacity --soak-seconds 120 --rate 300    # a short look

The figures go to `bench/results/capacity.json` and are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.http_load import build_request, read_response, request_once
from bench.procs import Proc, spawn, tree_rss
from bench.systems.base import Context, python
from bench.systems.taskjet import bench_settings, settings_env
from src.config import Settings
from src.embedded import EmbeddedServers, free_port

MB = 1 << 20
TASK = "src.tasks.example:example_task"


@dataclass
class Soak:
    seconds: float = 0.0
    submitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    rss_mb: list[tuple[float, float, float]] = field(default_factory=list)  # t, worker, server


async def _wait(what: str, check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.5)


async def _used_memory(broker: Any) -> int:
    info: dict[str, Any] = await broker.results.redis.info("memory")
    return int(info["used_memory"])


async def _all_stored(broker: Any, ids: list[str]) -> int:
    """How many of `ids` have no stored result."""
    missing = 0
    for start in range(0, len(ids), 2000):
        async with broker.results.redis.pipeline(transaction=False) as pipe:
            for task_id in ids[start : start + 2000]:
                pipe.exists(broker.layout.result_key(task_id))
            missing += sum(1 for found in await pipe.execute() if not found)
    return missing


def _worker(settings: Settings, ctx: Context, logs: Path) -> Proc:
    command = [
        python(), "-m", "taskiq", "worker", "src.tasks.broker:broker", "src.tasks.example",
        "--workers", "1", "--max-async-tasks", str(settings.worker_concurrency),
        "--log-level", ctx.log_level,
    ]  # fmt: skip
    return spawn("worker", command, settings_env(settings), logs / "worker.log")


def _server(settings: Settings, ctx: Context, port: int, logs: Path) -> Proc:
    command = [
        python(), "-m", "uvicorn", "src.api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        "--log-level", ctx.log_level.lower(),
    ]  # fmt: skip
    return spawn("api", command, settings_env(settings), logs / "api.log")


async def per_task(broker: Any, settings: Settings, ctx: Context, n: int, logs: Path) -> Any:
    """Bytes of JetStream per queued task, then of Redis per finished one."""
    from src.tasks.example import example_task

    before = await _used_memory(broker)
    ids: list[str] = []
    for start in range(0, n, 1000):
        handles = await asyncio.gather(
            *(example_task.kiq({"n": i}) for i in range(start, min(n, start + 1000)))
        )
        ids.extend(h.task_id for h in handles)
    stream = await broker.js.stream_info(broker.layout.stream)
    queued = stream.state.bytes / max(1, stream.state.messages)
    worker = _worker(settings, ctx, logs)
    try:

        async def done() -> bool:
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.output()}")
            return await _all_stored(broker, ids) == 0

        await _wait("every result stored", done, timeout_s=600)
    finally:
        worker.stop()
    after = await _used_memory(broker)
    redis = broker.results.redis
    record = await redis.memory_usage(broker.layout.record_key(ids[-1]))
    result = await redis.memory_usage(broker.layout.result_key(ids[-1]))
    return {
        "tasks": n,
        "jetstream_bytes_per_queued_task": round(queued),
        "redis_bytes_per_finished_task": round((after - before) / n),
        "record_key_bytes": record,
        "result_key_bytes": result,
    }


async def soak(settings: Settings, ctx: Context, opts: argparse.Namespace, logs: Path) -> Soak:
    """Steady HTTP submissions; RSS sampled every 10 s; every task's result checked at the end."""
    from src.tasks.broker import broker

    port = free_port()
    server, worker = _server(settings, ctx, port, logs), _worker(settings, ctx, logs)
    figures = Soak()
    ids: list[str] = []
    try:

        async def up() -> bool:
            if not server.alive() or not worker.alive():
                raise RuntimeError(f"exited:\n{server.output()}\n{worker.output()}")
            with contextlib.suppress(OSError):
                status, _ = await request_once("127.0.0.1", port, "/health", b"", method="GET")
                return status == 200
            return False

        await _wait("API server up", up, timeout_s=60)
        started = time.monotonic()
        deadline = started + opts.soak_seconds
        interval = opts.connections / opts.rate

        async def sender(k: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                due = started + k * interval / opts.connections
                while time.monotonic() < deadline and len(ids) < opts.soak_tasks:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    due += interval
                    body = json.dumps({"task": TASK, "args": [{"n": len(ids)}]}).encode()
                    writer.write(build_request("127.0.0.1", port, "/api/v1/tasks", body))
                    status, answer = await read_response(reader)
                    if status == 202:
                        ids.append(json.loads(answer)["task_id"])
                    else:
                        figures.refused[str(status)] = figures.refused.get(str(status), 0) + 1
            finally:
                writer.close()

        async def sampler() -> None:
            while True:
                t = round(time.monotonic() - started, 1)
                sizes = tree_rss(worker.pid)[0] / MB, tree_rss(server.pid)[0] / MB
                figures.rss_mb.append((t, round(sizes[0], 1), round(sizes[1], 1)))
                print(f"soak {t:>7.0f} s: {len(ids):>9,} submitted, worker {sizes[0]:.0f} MB, "
                      f"server {sizes[1]:.0f} MB", flush=True)  # fmt: skip
                await asyncio.sleep(10)

        watch = asyncio.create_task(sampler())
        await asyncio.gather(*(sender(k) for k in range(opts.connections)))
        figures.seconds = round(time.monotonic() - started, 1)
        figures.submitted = len(ids)

        async def drained() -> bool:
            return await _all_stored(broker, ids[-2000:]) == 0

        await _wait("the last tasks finished", drained, timeout_s=600)
        watch.cancel()
        figures.lost = await _all_stored(broker, ids)
    finally:
        server.stop()
        worker.stop()
    return figures


def table(figures: dict[str, Any]) -> str:
    per = figures["per_task"]
    rows = [
        ("JetStream bytes per queued task", f"{per['jetstream_bytes_per_queued_task']:,}"),
        ("Redis bytes per finished task", f"{per['redis_bytes_per_finished_task']:,}"),
        ("queued tasks per GiB of JetStream",
         f"{(1 << 30) // per['jetstream_bytes_per_queued_task']:,}"),
        ("finished tasks retained per GiB of Redis",
         f"{(1 << 30) // per['redis_bytes_per_finished_task']:,}"),
    ]  # fmt: skip
    s = figures.get("soak")
    if s:
        first, last = s["rss_mb"][min(1, len(s["rss_mb"]) - 1)], s["rss_mb"][-1]
        rows += [
            ("soak: seconds, tasks submitted", f"{s['seconds']:,.0f} s, {s['submitted']:,}"),
            ("soak: tasks lost", f"{s['lost']}"),
            ("soak: refused submissions", json.dumps(s["refused"]) if s["refused"] else "none"),
            ("soak: worker RSS at 10 s, at the end", f"{first[1]} MB, {last[1]} MB"),
            ("soak: server RSS at 10 s, at the end", f"{first[2]} MB, {last[2]} MB"),
        ]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    from src.tasks.broker import broker

    workdir = Path(tempfile.mkdtemp(prefix="taskjet-capacity-"))
    servers = EmbeddedServers.create(workdir / "servers", persistent=False)
    servers.start()
    ctx = Context(servers.nats.url, servers.redis.port)
    tag = f"c{uuid.uuid4().hex[:6]}"
    settings = bench_settings(ctx, tag, auth="disabled", api_submit_rate="off")
    broker.configure(settings)
    await broker.startup()
    figures: dict[str, Any] = {"options": vars(opts)}
    try:
        figures["per_task"] = await per_task(broker, settings, ctx, opts.tasks, workdir / "logs")
        if opts.soak_seconds > 0:
            figures["soak"] = asdict(await soak(settings, ctx, opts, workdir / "logs"))
    finally:
        await broker.shutdown()
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks for the per-task bytes")
    parser.add_argument("--soak-seconds", type=float, default=3600, help="0: no soak")
    parser.add_argument("--soak-tasks", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=150.0, help="soak submissions per second")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    opts = parser.parse_args()
    figures = asyncio.run(main(opts))
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "capacity.json").write_text(json.dumps(figures, indent=2, default=str))
    print(table(figures))


if __name__ == "__main__":
    cli()
