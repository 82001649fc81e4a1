"""`python -m bench.profile`: where a taskjet worker's time per no-op task goes.

1. Private servers; N no-op tasks are queued first, with no worker running.
2. One worker process under the stock `taskiq worker` CLI (each process runs the same worker loop
   as under `taskjet worker`) is started and drains them while `py-spy record` samples it; its
   CPU time (from /proc) over the drain gives the CPU cost per task, and the samples say where
   that cost goes.
3. The sending side: `kiq` of N no-op tasks (1000 in flight) under pyinstrument, in-process.

4. One uvicorn process (as `docker-entrypoint.sh` starts it) under HTTP load, under py-spy.

Writes `profile-taskjet-noop.md` (summary), `profile-taskjet-noop.txt` (py-spy's collapsed
stacks, for flamegraph tools or speedscope), `profile-taskjet-kiq.txt` (pyinstrument) and
`profile-taskjet-http-*.txt` (collapsed stacks of the API server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cli import DEFAULT_OUT
from bench.measure import ResultWatcher
from bench.procs import BIN, spawn, tree
from bench.systems.base import Context, System
from bench.systems.taskjet import Taskjet
from src.embedded import EmbeddedServers

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Where a sample's leaf frame lives (path as py-spy prints it), most specific first.
BUCKETS: list[tuple[str, str]] = [
    ("src/tasks/", "taskjet (src/tasks)"),
    ("src/api/", "taskjet (src/api)"),
    ("src/", "taskjet (src, other)"),
    ("h11/", "h11 (uvicorn's pure-Python HTTP parser)"),
    ("uvicorn/", "uvicorn"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("anyio/", "anyio"),
    ("bench/", "the task itself (bench/)"),
    ("taskiq/receiver/", "taskiq receiver"),
    ("taskiq/", "taskiq (other)"),
    ("taskiq_dependencies/", "taskiq-dependencies"),
    ("nats/", "nats-py"),
    ("redis/", "redis-py"),
    ("pydantic", "pydantic"),
    ("orjson", "orjson"),
    ("logging/", "logging"),
    ("asyncio/", "asyncio (Python part; uvloop's C code is not sampled)"),
    ("uvloop/", "uvloop"),
    ("json/", "json (stdlib)"),
    ("uuid.py", "uuid"),
    ("typing.py", "typing"),
    ("inspect.py", "inspect"),
    ("contextvars", "contextvars"),
    ("copy.py", "copy"),
    ("dataclasses.py", "dataclasses"),
]

# The steps of one task's life: inclusive time (a sample counts for every step it is in).
STEPS: list[tuple[str, str]] = [
    ("Fetching._fetch_into", "fetch loop (fetcher._fetch_into)"),
    ("Fetching._fill", "  pull requests (fetcher._fill)"),
    ("Admission.admit", "  admission.admit: decode + checks"),
    ("Admission.start", "  admission.start: batch marked STARTED in Redis"),
    ("JetStreamBroker.listen", "broker.listen: hand deliveries to the receiver"),
    ("Receiver.callback", "receiver.callback: one task, start to ack"),
    ("Receiver.run_task", "  receiver.run_task: middlewares, the function, result object"),
    ("RedisResultBackend.set_result", "  result backend set_result"),
    ("Settlement.finish", "  settlement.finish: settle (ack)"),
    ("Msg.ack", "    JetStream ack"),
    ("JetStreamFormatter.loads", "  formatter.loads"),
    ("EventBus.publish", "task events (core NATS publish)"),
    ("TransitionWriter._flush", "record + result writes (transitions._flush)"),
    ("Leases.beat", "lease heartbeat"),
]


WAITING = re.compile(
    r"^(Condition\.wait|Event\.wait|Thread\.join|_worker) \((threading|concurrent)"
)


def _bucket(path: str) -> str:
    for marker, label in BUCKETS:
        if path.startswith(marker) or f"/{marker}" in path:
            return label
    return "other"


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def _file(frame: str) -> str:
    match = re.search(r"\((.*?)(?::\d+)?\)$", frame)
    return match.group(1) if match else ""


def _function(frame: str) -> str:
    name = frame.split(" (", 1)[0]
    path = _file(frame)
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise(stacks: list[tuple[list[str], int]]) -> dict[str, Any]:
    """Self time by package and function, inclusive time by step. Dropped: import-time samples
    and threads parked in a wait (py-spy counts a thread blocked on a condition as active)."""
    kept = [
        (s, n)
        for s, n in stacks
        if not any("importlib._bootstrap" in f for f in s) and not WAITING.search(s[-1])
    ]
    total = sum(n for _, n in kept) or 1
    buckets: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    for frames, n in kept:
        leaf = frames[-1]
        buckets[_bucket(_file(leaf))] += n
        functions[_function(leaf)] += n
        for name in {_function(f) for f in frames}:
            inclusive[name] += n
        names = {f.split(" (", 1)[0] for f in frames}
        for qualname, label in STEPS:
            if qualname in names:
                steps[label] += n
    # Inclusive: only functions of taskjet, taskiq, nats-py and redis-py, without the roots.
    interesting = [
        (k, v / total)
        for k, v in inclusive.most_common()
        if re.search(r"\((src|taskiq|nats|redis)/", k) and not re.search(r"taskiq/(cli|__main)", k)
    ]
    return {
        "samples": total,
        "buckets": [(k, v / total) for k, v in buckets.most_common()],
        "functions": [(k, v / total) for k, v in functions.most_common(25)],
        "inclusive": interesting[:30],
        "steps": [(label, steps[label] / total) for _, label in STEPS],
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def drain(
    system: System, tasks: int, workdir: Path, spy: tuple[int, Path] | None = None
) -> tuple[float, float]:
    """Queue `tasks` no-ops, start one worker process, time its drain from its first result
    to its last (start-up excluded): (seconds, CPU seconds of the worker process)."""
    from bench.workloads import WORKLOADS

    watcher = ResultWatcher(system.redis_url)
    sent = await system.send_many(WORKLOADS["noop"], tasks, 1000)
    keys = [s.key for s in sent]
    worker = spawn("worker", system.worker_command(1), system.worker_env(), workdir / "w.log")
    profiler: subprocess.Popen[bytes] | None = None
    try:
        while len(tree(worker.pid)) < 2:
            await asyncio.sleep(0.005)
        child = tree(worker.pid)[1]
        while not await watcher.redis.exists(*keys[:20]):
            await asyncio.sleep(0.002)
        if spy is not None:
            rate, raw = spy
            command = [
                str(BIN / "py-spy"), "record", "--pid", str(child), "--rate", str(rate),
                "--format", "raw", "--function", "--output", str(raw),
            ]  # fmt: skip
            profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cpu0, t0 = cpu_seconds(child), time.perf_counter()
        done = await watcher.wait_all(keys, 600)
        cpu1, t1 = cpu_seconds(child), time.perf_counter()
        if done is None:
            raise RuntimeError("the worker did not drain the queue in 600 s")
        return t1 - t0, cpu1 - cpu0
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        worker.stop()
        await watcher.close()


async def peer_drain(ctx: Context, tasks: int, workdir: Path) -> list[str]:
    """For scale: the same drain by vanilla taskiq-nats (if installed)."""
    try:
        from bench.systems.taskiq_peers import TaskiqNats

        peer = TaskiqNats(ctx, f"v{uuid.uuid4().hex[:6]}")
        await peer.start()
    except ImportError as exc:
        return [f"- (vanilla taskiq-nats not installed, no baseline: {exc})"]
    try:
        print("the same drain by vanilla taskiq-nats...", file=sys.stderr)
        seconds, cpu = await drain(peer, tasks, workdir)
    finally:
        await peer.stop()
    return [
        f"- For scale, the same unprofiled drain by vanilla taskiq-nats (PullBasedJetStreamBroker, "
        f"fetch batch 1, + RedisAsyncResultBackend): {tasks / seconds:,.0f} tasks/s, "
        f"{cpu / tasks * 1e6:.0f} µs of worker CPU per task."
    ]


async def profile(tasks: int, out: Path, rate: int, http_seconds: float = 5.0) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="taskjet-profile-"))
    servers = EmbeddedServers.create(workdir / "servers", persistent=False)
    servers.start()
    ctx = Context(servers.nats.url, servers.redis.port)
    system = Taskjet(ctx, f"p{uuid.uuid4().hex[:6]}")
    lines: list[str] = []
    raw = out / "profile-taskjet-noop.txt"
    try:
        await system.start()
        print(f"drain of {tasks:,} queued no-op tasks, unprofiled...", file=sys.stderr)
        seconds, cpu = await drain(system, tasks, workdir)
        print("the same under py-spy...", file=sys.stderr)
        spy_seconds, spy_cpu = await drain(system, tasks, workdir, (rate, raw))
        per_task_us = cpu / tasks * 1e6
        summary = summarise(parse_collapsed(raw.read_text()))
        baseline = await peer_drain(ctx, tasks, workdir)
        lines += [
            "# taskjet worker profile: no-op tasks",
            "",
            f"- {tasks:,} no-op tasks queued first, then drained by one worker process "
            f"(`--max-async-tasks 100`, log level WARNING; timed from its first result to its "
            f"last): {seconds:.2f} s, **{tasks / seconds:,.0f} tasks/s**.",
            f"- Worker process CPU time (utime + stime from /proc): {cpu:.2f} s, "
            f"**{per_task_us:.0f} µs per task**; the process was {100 * cpu / seconds:.0f}% "
            "busy on one core.",
            f"- Then the same drain under `py-spy record --rate {rate} --function` (it pauses "
            f"the process per sample: {tasks / spy_seconds:,.0f} tasks/s, "
            f"{spy_cpu / tasks * 1e6:.0f} µs per task): {summary['samples']:,} samples of "
            "running code (waits in the event loop's poll are not sampled). Shares below are of "
            "those samples; µs per task = share x the unprofiled CPU time per task.",
            "- uvloop's own C code is invisible to py-spy: its time shows as self time of the "
            "Python frame that runs the loop (`start_listen`).",
            *baseline,
            "",
            "## Self time by package (leaf frame)",
            "",
            "| where | share | µs per task |",
            "|---|---:|---:|",
            *[f"| {k} | {v:.1%} | {v * per_task_us:.0f} |" for k, v in summary["buckets"]],
            "",
            "## Inclusive time by step",
            "",
            "| step | share | µs per task |",
            "|---|---:|---:|",
            *[f"| {k} | {v:.1%} | {v * per_task_us:.0f} |" for k, v in summary["steps"]],
            "",
            "## Top functions by inclusive time (taskjet, taskiq, nats-py, redis-py)",
            "",
            "| function | share | µs per task |",
            "|---|---:|---:|",
            *[f"| `{k}` | {v:.1%} | {v * per_task_us:.0f} |" for k, v in summary["inclusive"]],
            "",
            "## Top functions by self time",
            "",
            "| function | share |",
            "|---|---:|",
            *[f"| `{k}` | {v:.1%} |" for k, v in summary["functions"]],
            "",
        ]
        lines += await profile_kiq(system, tasks, out)
        if http_seconds > 0:
            lines += await profile_http(system, out, rate, http_seconds)
        await system.stop()
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    (out / "profile-taskjet-noop.md").write_text(text)
    return text


async def profile_kiq(system: Taskjet, tasks: int, out: Path) -> list[str]:
    from pyinstrument import Profiler

    from bench.workloads import WORKLOADS

    await system.broker.js.purge_stream(system.broker.layout.stream)
    started = time.perf_counter()
    await system.send_many(WORKLOADS["noop"], tasks, 1000)
    plain = tasks / (time.perf_counter() - started)
    await system.broker.js.purge_stream(system.broker.layout.stream)
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    started = time.perf_counter()
    with profiler:
        await system.send_many(WORKLOADS["noop"], tasks, 1000)
    elapsed = time.perf_counter() - started
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (out / "profile-taskjet-kiq.txt").write_text(text)
    await system.broker.js.purge_stream(system.broker.layout.stream)
    return [
        "## Sending side: `kiq`, 1000 in flight (pyinstrument)",
        "",
        f"{tasks:,} no-op tasks: {plain:,.0f} tasks/s unprofiled, {tasks / elapsed:,.0f} tasks/s "
        "under the profiler. Call tree: `profile-taskjet-kiq.txt`.",
        "",
    ]


async def profile_http(system: Taskjet, out: Path, rate: int, seconds: float) -> list[str]:
    """py-spy on one uvicorn process (as docker-entrypoint.sh starts it) under HTTP load."""
    from bench.extras import DEFAULT_BODIES
    from bench.http_load import load, request_once
    from bench.systems.base import python
    from bench.systems.taskjet import bench_settings, settings_env
    from src.config import Settings
    from src.embedded import free_port

    overrides: dict[str, Any] = {"auth": "disabled"} if "auth" in Settings.model_fields else {}
    if "api_submit_rate" in Settings.model_fields:
        overrides["api_submit_rate"] = "1000000/s"  # checked, never answering 429
    settings = bench_settings(system.ctx, f"h{uuid.uuid4().hex[:6]}", db=6, **overrides)
    port = free_port()
    command = [
        python(), "-m", "uvicorn", "src.api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="taskjet-profile-http-"))
    server = spawn("api", command, settings_env(settings), workdir / "api.log")
    lines: list[str] = []
    try:
        for _ in range(600):
            try:
                await request_once("127.0.0.1", port, "/health", b"", method="GET")
                break
            except OSError:
                await asyncio.sleep(0.1)
        for path in ("/process", "/api/v1/tasks"):
            body = json.dumps(DEFAULT_BODIES[path]).encode()
            status, _ = await request_once("127.0.0.1", port, path, body)
            if not 200 <= status < 300:
                lines += [f"HTTP `POST {path}`: answers {status}, not profiled.", ""]
                continue
            raw = out / f"profile-taskjet-http{path.replace('/', '-')}.txt"
            spy_command = [
                str(BIN / "py-spy"), "record", "--pid", str(server.pid), "--rate", str(rate),
                "--format", "raw", "--function", "--output", str(raw),
            ]  # fmt: skip
            spy = subprocess.Popen(spy_command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            await asyncio.sleep(1.0)  # py-spy attached
            cpu0 = cpu_seconds(server.pid)
            result = await load("127.0.0.1", port, path, body, seconds=seconds, connections=32)
            cpu1 = cpu_seconds(server.pid)
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            per_request_us = (cpu1 - cpu0) / max(1, result.requests) * 1e6
            summary = summarise(parse_collapsed(raw.read_text()))
            lines += [
                f"## HTTP `POST {path}`: one uvicorn process under py-spy",
                "",
                f"{result.rate:,.0f} requests/s while profiled (32 connections, {seconds:.0f} s; "
                f"responses {dict(sorted(result.statuses.items()))}); "
                f"server CPU {per_request_us:.0f} µs per request.",
                "",
                "| where (self time) | share | µs per request |",
                "|---|---:|---:|",
                *[
                    f"| {k} | {v:.1%} | {v * per_request_us:.0f} |"
                    for k, v in summary["buckets"][:12]
                ],
                "",
                "| function (inclusive) | share |",
                "|---|---:|",
                *[f"| `{k}` | {v:.1%} |" for k, v in summary["inclusive"][:15]],
                "",
            ]
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--http-seconds", type=float, default=5.0, help="0: skip the HTTP profile")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = profile(args.tasks, args.out, args.rate, args.http_seconds)
    try:
        import uvloop
    except ImportError:
        text = asyncio.run(work)
    else:
        text = uvloop.run(work)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
