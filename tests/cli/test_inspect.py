"""`taskjet inspect ...` against real servers and a worker, while a long task runs."""

from __future__ import annotations

import time

from src.engine.broker import JetStreamBroker
from src.engine.scheduling.schedules import Schedule
from tests.cli.conftest import Taskjet, json_lines
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


async def test_inspect_while_a_long_task_runs(
    broker: JetStreamBroker, start_worker: StartWorker, taskjet: Taskjet
) -> None:
    await start_worker()
    running = await tasks.hang.kiq("inspect")
    delayed = await tasks.echo.kicker().with_labels(delay=3600).kiq("later")

    async def started() -> bool:
        record = await broker.records.get(running.task_id)
        return record is not None and record.state == "STARTED"

    await eventually(started, what="the long task runs")

    code, out = await taskjet("inspect", "active", "--json")
    assert code == 0, out
    (active,) = json_lines(out)
    assert active["task_id"] == running.task_id
    assert active["task_name"] == "tests.support.tasks:hang"
    assert active["worker"]
    assert active["started_at"] <= time.time()
    code, out = await taskjet("inspect", "active")
    assert code == 0, out
    assert "1 running" in out
    assert running.task_id in out

    code, out = await taskjet("inspect", "workers", "--json")
    (worker,) = json_lines(out)
    assert worker["running"] == 1
    assert worker["worker_id"] == active["worker"]
    assert "tests.support.tasks:hang" in worker["tasks"]
    code, out = await taskjet("inspect", "workers")
    assert "1 worker process(es)" in out

    nightly = Schedule(id="nightly", task="tests.support.tasks:echo", cron="0 3 * * *")
    await broker.schedules.save(nightly)
    code, out = await taskjet("inspect", "scheduled", "--json")
    assert code == 0, out
    items = json_lines(out)
    (held,) = [i for i in items if i["kind"] == "delayed"]
    assert held["task_id"] == delayed.task_id
    assert held["due_at"] > time.time() + 3000
    (periodic,) = [i for i in items if i["kind"] == "periodic" and i["id"] == "nightly"]
    assert periodic["cron"] == "0 3 * * *"
    assert periodic["next_run"] == nightly.next_tick(time.time())
    code, out = await taskjet("inspect", "scheduled")
    assert "1 delayed task(s)" in out
    assert "nightly" in out

    code, out = await taskjet("inspect", "queues", "--json")
    queues = {q["queue"]: q for q in json_lines(out)}
    assert queues["default"]["in_flight"] == 1
    assert queues["default"]["consumed"] is True
    code, out = await taskjet("inspect", "queues")
    assert "totals: primary 1" in out

    code, out = await taskjet("inspect", "registered", "--json")
    known = {t["name"]: t for t in json_lines(out)}
    typed = known["tests.support.tasks:typed"]
    assert typed["api"] is True
    assert typed["workers"] == 1
    assert typed["arguments"]["required"] == ["name"]
    assert set(typed["arguments"]["properties"]) == {"name", "count", "tags"}
    flaky = known["tests.support.tasks:wrong_kind_of_failure"]
    assert flaky["api"] is False
    assert flaky["labels"]["retry_for"] == ["ConnectionError"], "classes by name"
    code, out = await taskjet("inspect", "registered")
    assert code == 0, out
    assert "known to 1 worker process(es)" in out

    await broker.control.cancel(running.task_id)


async def test_inspect_without_servers_says_why(taskjet: Taskjet, cli_env: dict[str, str]) -> None:
    cli_env["NATS_URL"] = "nats://127.0.0.1:1"
    code, out = await taskjet("inspect", "workers")
    assert code == 2
    assert out.startswith("error: ") or "\nerror: " in out
