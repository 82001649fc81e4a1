"""Periodic schedules fired by real tickers: worker processes, API servers, and the ticker on
the real broker driven by a fake clock. Each tick runs once, whatever else Redis holds."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import httpx
import pytest

from src.engine.broker import JetStreamBroker
from src.engine.scheduling.schedules import Schedule, tick_task_id
from tests.conftest import StartWorker
from tests.engine.scheduling.helpers import (
    AUTH,
    PLANTED,
    TICK_TASK,
    assert_once_each,
    new_key,
    plant,
    ran_ticks,
)
from tests.support.processes import eventually, spawn_server, wait_healthy


@pytest.mark.faults
async def test_schedules_fire_each_tick_once_across_replicas(
    broker: JetStreamBroker,
    start_worker: StartWorker,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Two worker processes and two servers all run tickers; every tick runs exactly once."""
    modules = "src.tasks.example tests.support.tasks tests.support.scheduled"
    env = {**env, "TASKJET_WORKER_MODULES": modules}
    servers = [spawn_server(env, tmp_path / f"server-{i}.log") for i in range(2)]
    try:
        for proc, base in servers:
            await wait_healthy(proc, base)
        await start_worker(*modules.split(), workers=2)
        key = new_key()
        async with httpx.AsyncClient(base_url=servers[0][1], headers=AUTH) as client:
            created = await client.post(
                "/api/v1/schedules",
                json={
                    "id": "every-second",
                    "task": TICK_TASK,
                    "interval": 1,
                    "kwargs": {"key": key},
                },
            )
            assert created.status_code == 201, created.text

            async def enough(k: str, n: int) -> dict[float, int] | None:
                ticks = await ran_ticks(broker, k)
                return ticks if len(ticks) >= n else None

            await eventually(lambda: enough(key, 4), timeout_s=40, what="4 interval ticks")
            await eventually(lambda: enough("code-schedule", 3), timeout_s=40, what="3 cron ticks")
            paused = await client.post("/api/v1/schedules/every-second/pause")
            assert paused.json()["paused"] is True
            listed = (await client.get("/api/v1/schedules")).json()["items"]
            assert {s["id"] for s in listed} == {"every-second", "every-2s"}
            state = (await client.get("/api/v1/schedules/every-second")).json()
            assert state["last_run"] is not None
            assert state["next_run"] is None, "paused"
            last = await broker.records.get(state["last_task_id"])
            assert last is not None
            assert last.task_name == TICK_TASK
        assert_once_each(await ran_ticks(broker, key), 1.0)
        assert_once_each(await ran_ticks(broker, "code-schedule"), 2.0)
    finally:
        for proc, _ in servers:
            await proc.stop()


@pytest.mark.faults
@pytest.mark.timeout(360)
async def test_a_five_field_cron_fires_once_a_minute_across_processes(
    broker: JetStreamBroker,
    start_worker: StartWorker,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """`* * * * *` with three tickers (two worker processes and a server) over two minute
    boundaries: each minute runs once, at its start. Beside it `* * * * * */5` (six fields,
    seconds last) keeps time through the same path, so a late repeat would have shown."""
    env = {**env, "TASKJET_WORKER_MODULES": "src.tasks.example tests.support.tasks"}
    proc, base = spawn_server(env, tmp_path / "server.log")
    try:
        await wait_healthy(proc, base)
        await start_worker(workers=2)
        minutes, seconds = new_key(), new_key()
        made_at: dict[str, float] = {}
        async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
            for schedule_id, cron, key in (
                ("each-minute", "* * * * *", minutes),
                ("each-5-s", "* * * * * */5", seconds),
            ):
                created = await client.post(
                    "/api/v1/schedules",
                    json={
                        "id": schedule_id,
                        "task": TICK_TASK,
                        "cron": cron,
                        "kwargs": {"key": key},
                    },
                )
                assert created.status_code == 201, created.text
                made_at[schedule_id] = created.json()["created_at"]

        async def two_minutes() -> dict[float, int] | None:
            ticks = await ran_ticks(broker, minutes)
            return ticks if len(ticks) >= 2 else None

        first = await eventually(two_minutes, timeout_s=200, what="two minute ticks")

        async def clock_past(instant: float) -> bool:
            return max(await ran_ticks(broker, seconds), default=0.0) >= instant

        await eventually(lambda: clock_past(max(first) + 15), timeout_s=60, what="15 s more")
        ran = await ran_ticks(broker, minutes)
        assert len(ran) in (2, 3), ran
        assert_once_each(ran, 60.0)
        assert min(ran) >= made_at["each-minute"], "no tick from before the schedule was made"
        assert_once_each(await ran_ticks(broker, seconds), 5.0)
    finally:
        await proc.stop()


async def test_the_ticker_skips_bad_stored_schedules_logging_each_once(
    broker: JetStreamBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage and impossible crons in Redis: the good schedule fires every tick, the bad
    ones are logged once each however often the ticker reads them (fake clock, real broker)."""
    await plant(broker, PLANTED)
    key = new_key()
    good = Schedule(id="good", task=TICK_TASK, interval=1, kwargs={"key": key}, created_at=0)
    await broker.schedules.save(good)
    ticker = broker.ticker()
    start = math.floor(time.time())
    with caplog.at_level(logging.INFO, logger="taskjet.schedules"):
        for step in range(23):  # over eleven seconds: the store is read again every two
            await ticker.tick(start + 0.5 + step / 2)
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == len(PLANTED), skipped
    for schedule_id in PLANTED:
        assert sum(f": {schedule_id}: " in line for line in skipped) == 1, skipped
    assert any("cron: " in line and "never fires" in line for line in skipped), skipped
    runs = await broker.results.redis.hgetall(broker.layout.schedule_runs_key("good"))
    assert float(runs[b"last_run"]) == start + 11
    for tick in range(start, start + 12):
        record = await broker.records.get(tick_task_id("good", tick))
        assert record is not None, f"the tick at {tick} did not fire"


async def test_the_ticker_logs_a_failing_schedule_once_and_fires_the_others(
    broker: JetStreamBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A schedule naming a task this process does not know fails on every tick: one warning."""
    for schedule in (
        Schedule(id="unknown", task="nowhere:nothing", interval=1, created_at=0),
        Schedule(id="good", task=TICK_TASK, interval=1, kwargs={"key": new_key()}, created_at=0),
    ):
        await broker.schedules.save(schedule)
    ticker = broker.ticker()
    start = math.floor(time.time())
    with caplog.at_level(logging.INFO, logger="taskjet.schedules"):
        for step in range(10):
            await ticker.tick(start + 0.5 + step)
    warnings = [r.getMessage() for r in caplog.records if "unknown" in r.getMessage()]
    assert warnings == ["schedule unknown: ScheduleError: names unknown task 'nowhere:nothing'"]
    runs = await broker.results.redis.hgetall(broker.layout.schedule_runs_key("good"))
    assert float(runs[b"last_run"]) == start + 9
