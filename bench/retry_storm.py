"""New-task latency during a retry storm, on private servers (not run by the test suite).

`--storm` tasks (default 2,000) fail at once and retry soon (up to 30 times, backoff 0.05 s to
0.5 s), as when an outside service is down; once the storm is on, new tasks are sent at `--rate`
per second, and the time from `kiq` to each one's start is measured. Run once per retry share,
so the cap's effect shows next to no cap (`1`):

    python -m bench.retry_storm                          # shares 0.3 and 1, 2,000 retrying tasks
    python -m bench.retry_storm --shares 0.3 --storm 500

The figures go to `bench/results/retry_storm.json` and are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.procs import Proc, spawn
from bench.systems.base import Context, python
from bench.systems.taskjet import bench_settings, settings_env
from src.config import Settings
from src.embedded import EmbeddedServers

OUT = Path(__file__).parent / "results" / "retry_storm.json"


def _worker(settings: Settings, logs: Path) -> Proc:
    command = [
        python(), "-m", "taskiq", "worker", "src.tasks.broker:broker", "bench.storm_tasks",
        "--workers", "1", "--max-async-tasks", str(settings.worker_concurrency),
        "--log-level", "WARNING",
    ]  # fmt: skip
    return spawn("worker", command, settings_env(settings), logs / "worker.log")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(ctx: Context, share: float, opts: argparse.Namespace, logs: Path) -> Any:
    from bench import storm_tasks
    from src.tasks.broker import broker

    tag = uuid.uuid4().hex[:8]
    settings = bench_settings(
        ctx, tag, retry_share=share, worker_concurrency=opts.concurrency, auth="disabled"
    )
    broker.configure(settings)
    await broker.startup()
    worker = _worker(settings, logs / f"share-{share}")
    try:
        while not await broker.workers.alive():
            await asyncio.sleep(0.2)
        await storm_tasks.outage.kiq_many([()] * opts.storm)
        while (await broker.monitor.status()).queues["retry"] < opts.storm // 10:
            await asyncio.sleep(0.05)  # the storm is on: a tenth of the tasks wait to retry
        sent: list[tuple[float, Any]] = []
        for _ in range(opts.new):
            sent.append((time.time(), await storm_tasks.fresh.kiq()))
            await asyncio.sleep(1 / opts.rate)
        ratio = (await broker.monitor.status()).retry_ratio
        results = await asyncio.gather(
            *(h.wait_result(timeout=opts.timeout) for _, h in sent), return_exceptions=True
        )
        latencies = [
            (float(r.return_value) - at) * 1000
            for (at, _), r in zip(sent, results, strict=True)
            if not isinstance(r, BaseException)
        ]
        missing = len(sent) - len(latencies)
        return {
            "share": share,
            "storm": opts.storm,
            "new": opts.new,
            "started": len(latencies),
            "missing": missing,
            "retry_ratio_during": ratio,
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p95_ms": round(_percentile(latencies, 0.95), 1) if latencies else None,
            "max_ms": round(max(latencies), 1) if latencies else None,
        }
    finally:
        worker.stop()
        await broker.shutdown()


async def main(opts: argparse.Namespace) -> list[Any]:
    workdir = Path(tempfile.mkdtemp(prefix="taskjet-storm-"))
    servers = EmbeddedServers.create(workdir / "servers", persistent=False)
    servers.start()
    try:
        ctx = Context(servers.nats.url, servers.redis.port)
        return [await one_run(ctx, share, opts, workdir / "logs") for share in opts.shares]
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm", type=int, default=2000, help="tasks failing and retrying")
    parser.add_argument("--new", type=int, default=100, help="new tasks sent during the storm")
    parser.add_argument("--rate", type=float, default=20.0, help="new tasks per second")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="the worker's --max-async-tasks"
    )
    parser.add_argument("--shares", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--timeout", type=float, default=120.0, help="longest wait per new task")
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args()
    rows = asyncio.run(main(opts))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        "| retry share | storm | new started | missing | retry_ratio | p50 ms | p95 ms | max ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['share']} | {r['storm']} | {r['started']}/{r['new']} | {r['missing']} | "
            f"{r['retry_ratio_during']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} |"
        )


if __name__ == "__main__":
    cli()
