"""The benchmark run: private servers, every system's workers, the measurements.

For each worker count, every selected system gets its worker started (stock CLI, own
process tree) and stays up for all workloads; the systems then take turns, run by run, in a
rotating order, so slow drift on a shared machine hits them all alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import trace_sink
from bench.measure import KeyEvents, ResultWatcher, median, percentile
from bench.procs import Proc, RssSampler, spawn, tree_cpu_seconds, tree_rss
from bench.systems import Context, System, load
from bench.trace_sink import TraceSink
from bench.workloads import WORKLOADS, Workload, expected_result
from src.embedded import EmbeddedServers
from src.engine import telemetry

MB = 1024 * 1024


@dataclass
class Options:
    systems: list[str]
    workloads: list[str]
    workers: list[int]
    tasks: int = 5000
    min_tasks: int = 50
    warmup: int = 20
    run_seconds: float = 2.0
    repeat: int = 3
    window: int = 100
    latency_rate: float = 500.0
    latency_seconds: float = 2.0
    latency_workloads: list[str] = field(default_factory=lambda: ["noop", "io1ms"])
    run_timeout_s: float = 120.0
    extras: bool = True
    extra_tasks: int = 20_000
    http_paths: list[str] = field(default_factory=lambda: ["/process", "/api/v1/tasks"])
    http_bodies: dict[str, str] = field(default_factory=dict)
    http_seconds: float = 3.0
    http_connections: int = 32
    log_level: str = "WARNING"
    quick: bool = False
    tracing: bool = False  # taskjet exports every span (OTLP over HTTP to a local sink)


class Log:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


log = Log()


@dataclass
class Cell:
    """All figures of one system, worker count and workload."""

    system: str
    workers: int
    workload: str
    tasks: int = 0
    throughput: list[float] = field(default_factory=list)
    enqueue: list[float] = field(default_factory=list)
    latency_runs: list[dict[str, float]] = field(default_factory=list)
    peak_rss_mb: float = math.nan
    # Worker CPU time (all its processes) per task, in each throughput run.
    cpu_us_per_task: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput_median"] = median(self.throughput)
        data["enqueue_median"] = median(self.enqueue)
        data["cpu_us_median"] = median(self.cpu_us_per_task)
        if self.latency_runs:
            data["latency"] = {
                p: median([run[p] for run in self.latency_runs]) for p in ("p50", "p95", "p99")
            }
            data["latency"]["complete"] = all(
                run["received"] == run["sent"] for run in self.latency_runs
            )
        else:
            data["latency"] = None
        return data


# One system: throughput and latency runs -------------------------------------------------
class Runner:
    def __init__(self, system: System, workers: int, opts: Options, worker_pid: int) -> None:
        self.system = system
        self.workers = workers
        self.opts = opts
        self.worker_pid = worker_pid
        self.watcher = ResultWatcher(system.redis_url, system.count_done)

    async def close(self) -> None:
        await self.watcher.close()

    async def batch(self, workload: Workload, n: int) -> tuple[float, float, list[Any]]:
        """Send n tasks, wait for all results: (enqueue seconds, total seconds, sent)."""
        t0 = time.perf_counter()
        sent = await self.system.send_many(workload, n, self.opts.window)
        t_enqueued = time.perf_counter()
        done = await self.watcher.wait_all([s.key for s in sent], self.opts.run_timeout_s)
        if done is None:
            have = await self.watcher.count([s.key for s in sent])
            await self.drain([s.key for s in sent])
            raise TimeoutError(f"{have}/{n} results after {self.opts.run_timeout_s:.0f}s")
        return t_enqueued - t0, done - t0, sent

    async def drain(self, keys: list[bytes]) -> None:
        """After a timeout: let the backlog finish so it does not slow the next run."""
        if await self.watcher.wait_all(keys, 300.0) is None:
            log(f"  {self.system.name}: backlog did not drain in 300s")

    async def verify(self, workload: Workload, sent: list[Any]) -> None:
        expected = expected_result(workload)
        for item in random.sample(sent, min(3, len(sent))):
            value = await self.system.fetch(item)
            if value != expected:
                raise AssertionError(f"{self.system.name}: result {value!r} != {expected!r}")

    async def calibrate(self, workload: Workload) -> int:
        """Warm up, and size the runs: `tasks`, or fewer where a run would last much longer
        than `run_seconds` (slow systems on the 100 ms and CPU workloads)."""
        n = max(1, min(self.opts.warmup, self.opts.tasks))
        _, total, sent = await self.batch(workload, n)
        rate = n / total
        n2 = int(min(max(rate * self.opts.run_seconds / 4, n), 1000, self.opts.tasks))
        _, total, sent2 = await self.batch(workload, n2)
        await self.verify(workload, sent + sent2)
        rate = n2 / total
        return int(min(max(rate * self.opts.run_seconds, self.opts.min_tasks), self.opts.tasks))

    async def throughput_run(self, workload: Workload, n: int, cell: Cell) -> None:
        cpu_s = tree_cpu_seconds(self.worker_pid)
        enqueue_s, total_s, sent = await self.batch(workload, n)
        cpu_s = tree_cpu_seconds(self.worker_pid) - cpu_s
        cell.throughput.append(n / total_s)
        cell.enqueue.append(n / enqueue_s)
        cell.cpu_us_per_task.append(cpu_s / n * 1e6)
        await self.verify(workload, sent)
        log(
            f"  w{self.workers} {workload.name:8} {self.system.name:12} n={n:<5} "
            f"{n / total_s:9,.0f} tasks/s end to end, enqueue {n / enqueue_s:9,.0f}/s"
        )

    async def latency_run(self, workload: Workload, cell: Cell) -> None:
        rate, seconds = self.opts.latency_rate, self.opts.latency_seconds
        n = max(1, int(rate * seconds))
        system = self.system
        async with KeyEvents(
            system.redis_url, system.redis_db, system.result_events, system.keyspace_classes
        ) as events:
            sends: list[tuple[float, Any]] = []
            pending: list[asyncio.Task[tuple[float, Any]]] = []

            async def timed(at: float) -> tuple[float, Any]:
                return at, await system.send(workload)

            start = time.perf_counter() + 0.005
            for i in range(n):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.perf_counter()
                if system.async_client:
                    pending.append(asyncio.create_task(timed(now)))
                else:
                    sends.append((now, await system.send(workload)))
            sends.extend(await asyncio.gather(*pending))
            achieved = n / max(1e-9, time.perf_counter() - start)
            deadline = time.perf_counter() + seconds + 15.0
            waiting = {s.key for _, s in sends}
            while waiting and time.perf_counter() < deadline:
                waiting = {k for k in waiting if k not in events.seen}
                await asyncio.sleep(0.01)
            latencies = sorted(
                (events.seen[s.key] - at) * 1000 for at, s in sends if s.key in events.seen
            )
        if waiting:
            await self.drain(list(waiting))
        run = {
            "sent": float(n),
            "received": float(len(latencies)),
            "rate": achieved,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
        }
        cell.latency_runs.append(run)
        missing = f", {n - len(latencies)} not done in time" if waiting else ""
        log(
            f"  w{self.workers} {workload.name:8} {system.name:12} latency @{achieved:,.0f}/s: "
            f"p50 {run['p50']:.2f} p95 {run['p95']:.2f} p99 {run['p99']:.2f} ms{missing}"
        )


# A phase: one worker count, all systems ----------------------------------------------------
async def run_phase(
    ctx: Context, workers: int, opts: Options, logs: Path, results: dict[str, Any]
) -> None:
    tag = f"{uuid.uuid4().hex[:6]}w{workers}"
    sampler = RssSampler()
    runners: list[Runner] = []
    procs: dict[str, Proc] = {}
    try:
        for name in opts.systems:
            system = load(name)(ctx, tag)
            proc = None
            try:
                await system.start()
                proc = spawn(
                    name,
                    system.worker_command(workers),
                    system.worker_env(),
                    logs / f"{name}-w{workers}.log",
                )
                started = time.perf_counter()
                await system.wait_ready(proc, workers)
            except Exception as exc:
                log(f"w{workers} {name}: cannot start, left out of this phase: {exc!r}")
                results["failures"].append(f"{name} with {workers} worker(s): {exc!r}")
                if proc is not None:
                    proc.stop()
                with contextlib.suppress(Exception):
                    await system.stop()
                continue
            log(f"w{workers} {name}: worker ready in {time.perf_counter() - started:.1f}s")
            runners.append(Runner(system, workers, opts, proc.pid))
            procs[name] = proc
            sampler.watch(name, proc.pid)
        await asyncio.sleep(1.0)
        for name, proc in procs.items():
            total, sizes = tree_rss(proc.pid)
            results["idle"].append(
                {
                    "system": name,
                    "workers": workers,
                    "rss_mb": total / MB,
                    "per_process_mb": [s / MB for s in sizes],
                }
            )
        for workload_name in opts.workloads if runners else []:
            await run_workload(WORKLOADS[workload_name], runners, sampler, opts, results)
    finally:
        sampler.close()
        for runner in runners:
            proc = procs[runner.system.name]
            proc.stop(group=runner.system.stop_group)
            if proc.process.returncode not in (0, -15, 143, None):
                log(
                    f"w{workers} {runner.system.name}: worker exited with {proc.process.returncode}"
                )
        for runner in runners:
            await runner.close()
            try:
                await runner.system.stop()
            except Exception as exc:
                log(f"{runner.system.name}: client stop failed: {exc!r}")


async def run_workload(
    workload: Workload,
    runners: list[Runner],
    sampler: RssSampler,
    opts: Options,
    results: dict[str, Any],
) -> None:
    cells: dict[str, Cell] = {}
    sizes: dict[str, int] = {}
    for runner in runners:
        name = runner.system.name
        cells[name] = Cell(name, runner.workers, workload.name)
        sampler.reset(name)
        try:
            sizes[name] = await runner.calibrate(workload)
            cells[name].tasks = sizes[name]
        except Exception as exc:
            cells[name].errors.append(f"warm-up: {exc!r}")
            log(f"  {name} {workload.name}: warm-up failed: {exc!r}")

    def rotated(turn: int) -> list[Runner]:
        k = turn % len(runners)
        return [r for r in runners[k:] + runners[:k] if r.system.name in sizes]

    for turn in range(opts.repeat):
        for runner in rotated(turn):
            name = runner.system.name
            await _guarded(
                cells[name],
                functools.partial(runner.throughput_run, workload, sizes[name], cells[name]),
            )
    for runner in runners:
        cells[runner.system.name].peak_rss_mb = sampler.peak(runner.system.name) / MB
    if workload.name in opts.latency_workloads:
        for turn in range(opts.repeat):
            for runner in rotated(turn):
                name = runner.system.name
                await _guarded(
                    cells[name], functools.partial(runner.latency_run, workload, cells[name])
                )
    results["cells"].extend(cell.summary() for cell in cells.values())


async def _guarded(cell: Cell, action: Callable[[], Awaitable[None]]) -> None:
    try:
        await action()
    except Exception as exc:
        cell.errors.append(repr(exc))
        log(f"  {cell.system} {cell.workload}: {exc!r}")


# The whole run -------------------------------------------------------------------------------
async def run(opts: Options, command: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="taskjet-bench-"))
    servers = EmbeddedServers.create(workdir / "servers", persistent=False)
    servers.start()
    log(f"private servers: {servers.nats.url}, {servers.redis.url} (in {workdir})")
    ctx = Context(servers.nats.url, servers.redis.port, opts.log_level)
    sink = TraceSink() if opts.tracing else None
    if sink is not None:  # before the harness's broker starts: tracing is set up once
        trace_sink.enable(await sink.start())
        log(f"tracing on: spans exported to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}")
    started = time.time()
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "options": asdict(opts),
            "machine": machine(),
            "versions": versions(servers),
        },
        "systems": {},
        "cells": [],
        "idle": [],
        "extras": {},
        "failures": [],
    }
    try:
        for name in opts.systems:
            results["systems"][name] = load(name).notes
        for workers in opts.workers:
            log(f"phase: {workers} worker process(es), systems {', '.join(opts.systems)}")
            await run_phase(ctx, workers, opts, workdir / "logs", results)
        if opts.extras and "taskjet" in opts.systems:
            from bench.extras import taskjet_extras

            try:
                results["extras"] = await taskjet_extras(ctx, opts, workdir / "logs", log)
            except Exception as exc:
                log(f"taskjet extras failed: {exc!r}")
                results["failures"].append(f"taskjet extras: {exc!r}")
    finally:
        if sink is not None:
            telemetry.flush()
            await sink.stop()
            results["meta"]["tracing"] = {"requests": sink.requests, "bytes": sink.bytes}
        servers.stop()
        results["meta"]["duration_s"] = round(time.time() - started, 1)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        mem_gb = round(int(mem) / 1024 / 1024, 1)
    except OSError:
        mem_gb = 0.0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions(servers: EmbeddedServers) -> dict[str, str]:
    found: dict[str, str] = {}
    for package in (
        "taskiq",
        "taskiq-nats",
        "taskiq-redis",
        "nats-py",
        "redis",
        "celery",
        "kombu",
        "dramatiq",
        "saq",
        "streaq",
        "coredis",
        "uvloop",
        "orjson",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    for name, command in (
        ("nats-server", servers.nats.command()[0]),
        ("redis-server", servers.redis.command()[0]),
    ):
        out = subprocess.run(
            [command, "--version"], capture_output=True, text=True, check=False, timeout=10
        )
        found[name] = (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout else "?"
    return found
