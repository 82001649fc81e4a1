"""`python -m bench`: taskjet against its peers, side by side, on private servers."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bench.report import write
from bench.runner import Options, run
from bench.systems import SYSTEMS
from bench.workloads import WORKLOADS

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _names(allowed: list[str], what: str) -> Any:
    def parse(value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
            )
        return names

    return parse


def _ints(value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a list of integers") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("worker counts must be 1 or more")
    return numbers


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--systems", type=_names(list(SYSTEMS), "system"), default=list(SYSTEMS))
    p.add_argument("--workloads", type=_names(list(WORKLOADS), "workload"), default=list(WORKLOADS))
    p.add_argument("--workers", type=_ints, default=[1, 2], help="worker process counts")
    p.add_argument("--tasks", type=int, default=None, help="tasks per throughput run (most)")
    p.add_argument("--repeat", type=int, default=None, help="runs per figure (median taken)")
    p.add_argument(
        "--run-seconds",
        type=float,
        default=None,
        help="slow cells get fewer tasks per run, so that a run lasts about this long",
    )
    p.add_argument("--min-tasks", type=int, default=None, help="fewest tasks per run")
    p.add_argument("--window", type=int, default=100, help="sends in flight (async clients)")
    p.add_argument("--latency-rate", type=float, default=500.0, help="tasks/s of latency runs")
    p.add_argument("--latency-seconds", type=float, default=None, help="length of a latency run")
    p.add_argument(
        "--latency-workloads",
        type=_names(list(WORKLOADS), "workload"),
        default=["noop", "io1ms"],
    )
    p.add_argument(
        "--no-extras",
        dest="extras",
        action="store_false",
        help="skip taskjet's own figures (enqueue from Python, HTTP submit)",
    )
    p.add_argument("--extra-tasks", type=int, default=None, help="tasks per enqueue-only run")
    p.add_argument(
        "--http-paths",
        default="/process,/api/v1/tasks",
        help="POST endpoints for the HTTP submit figure (skipped if 404)",
    )
    p.add_argument(
        "--http-body",
        action="append",
        default=[],
        metavar="PATH=JSON",
        help="request body for one HTTP path",
    )
    p.add_argument("--http-seconds", type=float, default=None)
    p.add_argument("--http-connections", type=int, default=32)
    p.add_argument("--log-level", default="WARNING", help="log level of every worker")
    p.add_argument(
        "--tracing",
        action="store_true",
        help="taskjet with OpenTelemetry tracing on, exporting every span (OTLP/HTTP) to a "
        "local sink: compare with a run without it",
    )
    p.add_argument("--run-timeout", type=float, default=120.0, help="seconds before a run fails")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    p.add_argument("--name", default="latest", help="output file name (NAME.md/.json/.png)")
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="JSON",
        help="only write the report (markdown, plot) again from a run's JSON",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: few tasks, one repeat, short latency and HTTP runs",
    )
    return p


def options(args: argparse.Namespace) -> Options:
    quick = args.quick

    def pick(value: Any, normal: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else normal)

    bodies = {}
    for item in args.http_body:
        path, sep, body = item.partition("=")
        if not sep:
            raise SystemExit(f"--http-body wants PATH=JSON, got {item!r}")
        bodies[path] = body
    tasks = pick(args.tasks, 5000, 300)
    return Options(
        systems=args.systems,
        workloads=args.workloads,
        workers=args.workers,
        tasks=tasks,
        min_tasks=min(tasks, pick(args.min_tasks, 50, 20)),
        warmup=20 if not quick else 10,
        run_seconds=pick(args.run_seconds, 2.0, 0.5),
        repeat=pick(args.repeat, 3, 1),
        window=args.window,
        latency_rate=args.latency_rate,
        latency_seconds=pick(args.latency_seconds, 2.0, 0.4),
        latency_workloads=args.latency_workloads,
        run_timeout_s=args.run_timeout,
        extras=args.extras,
        extra_tasks=pick(args.extra_tasks, 20_000, 2000),
        http_paths=[p.strip() for p in args.http_paths.split(",") if p.strip()],
        http_bodies=bodies,
        http_seconds=pick(args.http_seconds, 3.0, 0.5),
        http_connections=args.http_connections,
        log_level=args.log_level.upper(),
        quick=quick,
        tracing=args.tracing,
    )


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.from_json is not None:
        text, paths = write(json.loads(args.from_json.read_text()), args.out, args.name)
        print(text)
        print("written: " + ", ".join(str(p) for p in paths))
        return 0
    opts = options(args)
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    results = _run(run(opts, command))
    text, paths = write(results, args.out, args.name)
    print(text)
    print("written: " + ", ".join(str(p) for p in paths))
    failed = [c for c in results["cells"] if c["errors"]]
    if failed:
        print(f"{len(failed)} cell(s) had errors; see the JSON", file=sys.stderr)
    for failure in results["failures"]:
        print(f"not measured: {failure}", file=sys.stderr)
    return 1 if failed or results["failures"] else 0
