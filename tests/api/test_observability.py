"""`/api/v1/stats`, `/metrics` and `/health/workers` on real servers and worker processes."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from src.config import Settings
from src.embedded import EmbeddedServers, free_port
from src.engine.core.states import TaskState
from src.tasks.broker import broker as app_broker
from tests.api.conftest import api_client
from tests.conftest import StartWorker, isolated_settings
from tests.engine.state.test_stats import run_known_mix
from tests.support import tasks
from tests.support.processes import eventually


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_stats_and_metrics_match_a_known_mix(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    since = int(time.time())
    expected = await run_known_mix(app_broker, start_worker)

    answer = await client.get("/api/v1/stats", params={"since": since, "step": 60})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {
        "step", "since", "until", "task", "queue", "buckets", "totals",
        "run_histogram", "wait_histogram",
    }  # fmt: skip
    assert (body["step"], body["since"], body["task"], body["queue"]) == (
        60,
        since // 60 * 60,
        None,
        None,
    )
    totals = body["totals"]
    assert {k: totals[k] for k in ("succeeded", "failed", "retried", "dead", "cancelled")} == {
        "succeeded": 4,
        "failed": 2,
        "retried": 3,
        "dead": 1,
        "cancelled": 1,
    }
    assert (totals["run_count"], totals["wait_count"]) == (10, 10)
    starts = [b["start"] for b in body["buckets"]]
    assert starts == list(range(starts[0], starts[0] + 60 * len(starts), 60))
    assert sum(b["succeeded"] for b in body["buckets"]) == 4
    assert body["run_histogram"]["le"][-1] == "+Inf"
    assert body["run_histogram"]["counts"][-1] == 10

    iso = datetime.fromtimestamp(since, UTC).isoformat()
    one = await client.get(
        "/api/v1/stats", params={"since": iso, "task": tasks.always_fails.task_name}
    )
    assert one.json()["task"] == tasks.always_fails.task_name
    assert (one.json()["totals"]["retried"], one.json()["totals"]["dead"]) == (2, 1)

    async def settled() -> Any:
        """The last acks and the dead letter land just after the outcomes are recorded."""
        scrape = await client.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        found = _samples(scrape.text)
        lanes = [
            found["taskjet_queue_depth", (("lane", lane), ("queue", "default"))]
            for lane in ("high", "normal", "low")
        ]
        done = found["taskjet_dead_letters", ()] == 1 and lanes == [0, 0, 0]
        return (
            found
            if done and found["taskjet_tasks_in_flight", (("queue", "default"),)] == 0
            else None
        )

    samples = await eventually(settled, what="acks and the dead letter in the metrics")
    for name, want in expected.items():
        for outcome in ("succeeded", "failed", "retried", "dead", "cancelled"):
            labels = (("outcome", outcome), ("queue", "default"), ("task", name))
            assert samples["taskjet_tasks_total", labels] == want.get(outcome, 0), (name, outcome)
        labels = (("queue", "default"), ("task", name))
        assert samples["taskjet_task_run_seconds_count", labels] == want["runs"]
        assert samples["taskjet_task_wait_seconds_count", labels] == want["runs"]
        inf = (("le", "+Inf"), *labels)
        assert samples["taskjet_task_run_seconds_bucket", inf] == want["runs"]
    assert samples["taskjet_workers", (("queue", "default"),)] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step": 90}, "step"),
        ({"step": 0}, "step"),
        ({"since": "yesterday"}, "since"),
        ({"since": str(int(time.time()) + 86_400)}, "since"),
        ({"since": "-5"}, "since"),
    ],
)
async def test_a_bad_since_or_step_is_422(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    answer = await client.get("/api/v1/stats", params=params)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["details"][0]["loc"] == ["query", field]
    assert field in error["message"] or "since" in error["details"][0]["loc"]


async def test_stats_start_at_the_oldest_kept_minute(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/stats", params={"since": 0, "step": 3600})).json()
    retention = app_broker.settings.stats_retention_s
    assert body["since"] >= int(time.time()) - retention - 60
    assert all(b["succeeded"] == 0 for b in body["buckets"])


async def _workers(client: httpx.AsyncClient, path: str = "/health/workers") -> list[Any]:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    workers: list[Any] = answer.json()["workers"]
    return workers


async def test_a_stopped_worker_shows_stale_then_goes(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    proc = await start_worker()
    (worker,) = await eventually(lambda: _workers(client), what="worker reported")
    assert worker["status"] == "ok"
    assert worker["queues"] == ["default"]
    assert worker["host"]
    assert worker["rss_bytes"] > 0
    assert worker["loop_lag_s"] >= 0
    assert worker["seen_at"] >= worker["started_at"]
    assert "running_tasks" not in worker

    handle = await tasks.echo.kiq(1)
    await handle.wait_result(timeout=30)

    async def counted() -> Any:
        (w,) = await _workers(client)
        return w if w["processed"] == 1 else None

    worker = await eventually(counted, what="the run counted")
    assert worker["failed"] == 0
    assert worker["mean_run_s_5m"] is not None

    os.killpg(proc.process.pid, signal.SIGKILL)  # no goodbye: its report just stops

    async def status() -> list[str]:
        return [w["status"] for w in await _workers(client)]

    await eventually(lambda: _is(status(), ["stale"]), what="stale")
    await eventually(lambda: _is(status(), []), what="gone")


async def _is(found: Any, wanted: list[str]) -> bool:
    return bool(await found == wanted)


async def test_diagnostics_list_a_running_task(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.hang.kiq(uuid.uuid4().hex)

    async def running() -> Any:
        for w in await _workers(client, "/health/workers/diagnostics"):
            for task in w["running_tasks"]:
                if task["task_id"] == handle.task_id and task["lease_extended_at"]:
                    return w, task
        return None

    worker, task = await eventually(running, what="the running task, lease extended")
    assert task["task_name"] == tasks.hang.task_name
    assert task["since"] <= task["lease_extended_at"]
    assert worker["running"] == 1
    assert worker["nats_rtt_s"] > 0
    assert worker["redis_rtt_s"] > 0
    record = await app_broker.control.cancel(handle.task_id)
    assert record.state in (TaskState.CANCELLED, TaskState.STARTED)
    await handle.wait_result(timeout=30)


async def test_the_metrics_port_serves_without_a_key(settings: Settings) -> None:
    port = free_port()
    keyless = settings.model_copy(update={"metrics_port": port})
    async with api_client(keyless, key=None) as client, httpx.AsyncClient() as plain:
        assert (await client.get("/metrics")).status_code == 401
        scrape = await plain.get(f"http://127.0.0.1:{port}/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        samples = _samples(scrape.text)
        assert samples["taskjet_dead_letters", ()] == 0
        assert (await plain.get(f"http://127.0.0.1:{port}/")).status_code == 404
        assert (await plain.post(f"http://127.0.0.1:{port}/metrics")).status_code == 405
        assert (await plain.head(f"http://127.0.0.1:{port}/metrics")).status_code == 200
    with pytest.raises(httpx.ConnectError):  # closed with the app
        async with httpx.AsyncClient() as plain:
            await plain.get(f"http://127.0.0.1:{port}/metrics")


async def test_schedule_lag_is_a_gauge_per_schedule(client: httpx.AsyncClient) -> None:
    body = {"id": "lagging", "task": tasks.typed.task_name, "interval": 1, "args": ["x"]}
    created = await client.post("/api/v1/schedules", json=body)
    assert created.status_code == 201, created.text

    async def lag() -> float | None:
        samples = _samples((await client.get("/metrics")).text)
        return samples.get(("taskjet_schedule_lag_seconds", (("schedule", "lagging"),)))

    seconds = await eventually(lambda: _not_none(lag()), what="the schedule fired")
    assert 0 <= seconds < 60


async def _not_none(found: Any) -> Any:
    value = await found
    return value if value is not None else None


@pytest.mark.faults
async def test_the_metrics_port_answers_503_while_redis_is_down(
    private_servers: EmbeddedServers,
) -> None:
    port = free_port()
    settings = isolated_settings(private_servers, metrics_port=port)
    async with api_client(settings), httpx.AsyncClient() as plain:
        assert (await plain.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
        private_servers.redis.stop()
        try:
            down = await plain.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
            assert down.status_code == 503
            assert down.text == "unavailable\n"
        finally:
            private_servers.redis.start()
