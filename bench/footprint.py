"""What a worker costs in memory, under `taskjet worker` and under `taskiq worker`.

    python -m bench.footprint [--tasks 20000] [--workers 1,2] [--out results/footprint.json]

For each manager and process count: private NATS and Redis, the workers started as the
benchmark starts taskjet's, their memory 3 s after start (idle) and again after `--tasks`
no-op tasks went through them. Three sums over the manager and its worker processes:

- RSS counts a page shared by several of them once per process (what `make bench` reports);
- PSS splits each shared page between the processes sharing it: the tree's fair share of
  physical memory;
- USS counts only pages no other process maps.

Under `taskiq worker` the workers are forked from a manager that imported taskiq, so they
start out sharing those pages; Python's reference counting and garbage collector write to
objects as they are used, and the pages get copied one by one. `taskjet worker`'s manager
imports no taskiq, and its workers share only the interpreter's and libraries' files.
Writes `results/footprint.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.procs import tree
from bench.systems.base import python
from bench.systems.taskjet import settings_env
from src.config import load_settings
from src.embedded import EmbeddedServers

RESULTS = Path(__file__).parent / "results" / "footprint.json"
MANAGERS = {
    "taskjet worker": [python(), "-m", "src.launcher"],
    "taskiq worker": [python(), "-m", "taskiq", "worker"],
}


@dataclass
class Row:
    manager: str
    workers: int
    idle: dict[str, float]
    after: dict[str, float]


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS summed over `pid` and its descendants (from smaps_rollup)."""
    sums = {"rss": 0, "pss": 0, "uss": 0}
    for each in tree(pid):
        try:
            lines = Path(f"/proc/{each}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, rest = line.partition(":")
            kb = int(rest.split()[0]) if rest.split() and rest.split()[0].isdigit() else 0
            if name == "Rss":
                sums["rss"] += kb
            elif name == "Pss":
                sums["pss"] += kb
            elif name in ("Private_Clean", "Private_Dirty"):
                sums["uss"] += kb
    return {k: round(v / 1024, 1) for k, v in sums.items()}


async def measure(manager: str, workers: int, tasks: int, env: dict[str, str]) -> Row:
    from bench.systems import taskjet_tasks

    args = [*MANAGERS[manager], "src.tasks.broker:broker", "bench.systems.taskjet_tasks"]
    args += ["--workers", str(workers), "--log-level", "WARNING"]
    args += ["--receiver", "src.tasks.broker:TaskjetReceiver"]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(args, env=env, cwd=root, stdout=subprocess.DEVNULL)
    try:
        await asyncio.sleep(3.0)
        idle = memory_mb(proc.pid)
        for start in range(0, tasks, 5000):
            handles = await taskjet_tasks.noop.kiq_many(
                [() for _ in range(min(5000, tasks - start))]
            )
            await asyncio.gather(*(h.wait_result(timeout=300) for h in handles))
        await asyncio.sleep(1.0)
        after = memory_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    return Row(manager, workers, idle, after)


async def main(tasks: int, counts: list[int]) -> list[Row]:
    from src.tasks.broker import broker

    folder = Path(tempfile.mkdtemp(prefix="taskjet-footprint-"))
    servers = EmbeddedServers.create(folder, persistent=False)
    servers.start()
    try:
        settings = load_settings(nats_url=servers.nats.url, redis_url=servers.redis.url)
        broker.configure(settings)
        await broker.startup()
        rows = []
        for workers in counts:
            for manager in MANAGERS:
                rows.append(await measure(manager, workers, tasks, settings_env(settings)))
        await broker.shutdown()
        return rows
    finally:
        servers.stop()


def table(rows: list[Row], tasks: int) -> str:
    lines = [
        f"| manager | worker processes | idle RSS / PSS / USS (MB) | after {tasks:,} tasks |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        cells = [
            " / ".join(f"{m[k]:.1f}" for k in ("rss", "pss", "uss")) for m in (row.idle, row.after)
        ]
        lines.append(f"| `{row.manager}` | {row.workers} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2", help="worker process counts")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    options = parser.parse_args()
    counts = [int(n) for n in options.workers.split(",")]
    rows = asyncio.run(main(options.tasks, counts))
    options.out.write_text(
        json.dumps({"tasks": options.tasks, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    print(table(rows, options.tasks))
    print(f"written: {options.out}")
