"""How fast the dashboard's pages answer with 100,000 task records in Redis.

Each page is timed as a browser loads it: the HTML, then the API calls its script makes
(the tasks page also at a deep cursor, and filtered so that one page looks far down the
index). Private nats-server and Redis, the app under uvicorn on a free port. Every call must
answer 200; the figures are printed and written to `bench/results/dashboard.json`.

    .venv/bin/python -m bench.dashboard [--records 100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from taskiq.message import TaskiqMessage

from bench.runner import machine
from src.api.app import create_app
from src.config import load_settings
from src.embedded import free_port
from src.embedded.stack import EmbeddedServers
from src.engine.core.states import TaskState
from src.engine.state.transitions import Transition
from src.tasks.broker import broker

KEY = "bench-admin-key-0123456789"
BUDGET_MS = 200.0
OUT = Path(__file__).parent / "results" / "dashboard.json"


async def _fill(count: int) -> list[str]:
    """`count` records over 5 task names and 2 queues; a tenth of them finished."""
    records = broker.records
    ids: list[str] = []
    for start in range(0, count, 2000):
        batch = [
            TaskiqMessage(
                task_id=uuid.uuid4().hex,
                task_name=f"bench.task{n % 5}",
                labels={"client_id": f"c{n % 50}"},
                args=[n],
                kwargs={},
            )
            for n in range(start, min(count, start + 2000))
        ]
        queue = "default"
        await records.apply(records.queued(m, queue, b"{}", queued_at=time.time()) for m in batch)
        await records.apply(
            Transition(m.task_id, m.task_name, TaskState.SUCCESS, "final") for m in batch[::10]
        )
        ids.extend(m.task_id for m in batch)
    return ids


def _pages(ids: list[str], deep_cursor: str) -> dict[str, list[str]]:
    since = int(time.time()) - 3600
    return {
        "overview": [
            "/dashboard",
            "/api/v1/queues/status",
            "/api/v1/tasks?state=FAILURE&limit=10",
            "/api/v1/tasks?state=DEAD&limit=10",
            f"/api/v1/stats?since={since}&step=60",
        ],
        "tasks": ["/dashboard/tasks", "/api/v1/tasks?limit=50"],
        "tasks, deep cursor": ["/dashboard/tasks", f"/api/v1/tasks?limit=50&cursor={deep_cursor}"],
        "tasks, by name + state": [
            "/dashboard/tasks",
            "/api/v1/tasks?limit=50&name=bench.task0&state=SUCCESS",
        ],
        "tasks, no match (worst)": ["/dashboard/tasks", "/api/v1/tasks?limit=50&client_id=nobody"],
        "tasks, id prefix": ["/dashboard/tasks", f"/api/v1/tasks?limit=50&id_prefix={ids[-7][:6]}"],
        "task": [
            f"/dashboard/tasks/{ids[500]}",
            f"/api/v1/tasks/{ids[500]}",
            f"/api/v1/tasks/{ids[500]}/artifacts",
        ],
        "submit a task": ["/dashboard/submit", "/api/v1/registry", "/api/v1/queues/status"],
        "workers": [
            "/dashboard/workers",
            "/api/v1/queues/status",
            "/api/v1/tasks?state=STARTED&limit=200",
            "/api/v1/tasks?state=PROGRESS&limit=200",
        ],
        "queues": ["/dashboard/queues", "/api/v1/queues/status"],
        "schedules": ["/dashboard/schedules", "/api/v1/schedules"],
        "dead letters": ["/dashboard/dead-letters", "/api/v1/queues/dlq?limit=200"],
    }


async def _time(client: httpx.AsyncClient, paths: list[str]) -> float:
    """Milliseconds for the page and its calls, made at once as its script does."""
    started = time.perf_counter()
    page = await client.get(paths[0])
    page.raise_for_status()
    answers = await asyncio.gather(*(client.get(path) for path in paths[1:]))
    for answer in answers:
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.request.url.path}: {answer.status_code} {answer.text}")
    return (time.perf_counter() - started) * 1000


async def run(records: int, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        servers = EmbeddedServers.create(Path(folder), persistent=False)
        servers.start()
        try:
            settings = load_settings(
                nats_url=servers.nats.url,
                redis_url=servers.redis.url,
                api_keys=f"admin:{KEY}",
                scheduler=False,
            )
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(create_app(settings), port=port, log_level="warning")
            )
            task = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            try:
                fill_started = time.perf_counter()
                ids = await _fill(records)
                print(f"{records:,} records written in {time.perf_counter() - fill_started:.1f} s")
                pages = await _measure(f"http://127.0.0.1:{port}", ids, rounds)
            finally:
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            servers.stop()
    return {
        "records": records,
        "rounds": rounds,
        "budget_ms": BUDGET_MS,
        "within_budget": all(page["p95_ms"] <= BUDGET_MS for page in pages.values()),
        "load_average": [round(n, 2) for n in os.getloadavg()],
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pages": pages,
    }


async def _measure(base: str, ids: list[str], rounds: int) -> dict[str, dict[str, float]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        login = await client.get("/dashboard/login")
        token = login.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
        await client.post("/dashboard/login", data={"login_token": token, "key": KEY})
        client.headers.pop("Authorization")
        cursor = None
        for _ in range(len(ids) // 2 // 500):  # half way down the index
            page = (
                await client.get(
                    "/api/v1/tasks", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
                )
            ).json()
            cursor = page["next_cursor"]
        header = f"{'page':<26} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}"
        print(f"{header}  (budget {BUDGET_MS:.0f} ms)")
        figures: dict[str, dict[str, float]] = {}
        for name, paths in _pages(ids, cursor or "").items():
            times = sorted([await _time(client, paths) for _ in range(rounds)])
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            median = statistics.median(times)
            figures[name] = {
                "median_ms": round(median, 1),
                "p95_ms": round(p95, 1),
                "max_ms": round(times[-1], 1),
            }
            mark = "" if p95 <= BUDGET_MS else "  over budget"
            print(f"{name:<26} {median:>10.1f} {p95:>8.1f} {times[-1]:>8.1f}{mark}")
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = asyncio.run(run(args.records, args.rounds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average {results['load_average']}; written to {args.out}")


if __name__ == "__main__":
    main()
