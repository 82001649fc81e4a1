"""`taskjet schedules list|pause|resume|run|delete` against real servers and a worker."""

from __future__ import annotations

from src.engine.broker import JetStreamBroker
from src.engine.scheduling.schedules import Schedule
from tests.cli.conftest import Taskjet, json_lines
from tests.conftest import StartWorker
from tests.support.processes import eventually


async def test_schedule_commands(
    broker: JetStreamBroker, start_worker: StartWorker, taskjet: Taskjet
) -> None:
    await start_worker()
    await broker.schedules.add(
        Schedule(id="nightly", task="tests.support.tasks:echo", cron="0 3 * * *",
                 kwargs={"value": "night"})
    )  # fmt: skip

    code, out = await taskjet("schedules", "list", "--json")
    assert code == 0, out
    (listed,) = [s for s in json_lines(out) if s["id"] == "nightly"]
    assert listed["paused"] is False
    assert listed["next_run"] is not None
    code, out = await taskjet("schedules", "list")
    assert "nightly" in out
    assert "0 3 * * *" in out

    code, out = await taskjet("schedules", "pause", "nightly")
    assert (code, out.strip()) == (0, "paused nightly")
    stored = await broker.schedules.get("nightly")
    assert stored is not None
    assert stored.paused

    code, out = await taskjet("schedules", "run", "nightly")
    assert code == 0, out
    task_id = out.strip().removeprefix("dispatched ")

    async def ran() -> bool:
        record = await broker.records.get(task_id)
        return record is not None and record.state == "SUCCESS"

    await eventually(ran, what="the run asked for ran, though paused")
    state = await broker.schedules.state(await broker.schedule_control.find("nightly"))
    assert state.last_task_id == task_id

    code, out = await taskjet("schedules", "resume", "nightly")
    assert code == 0, out
    assert out.startswith("resumed nightly: next run ")

    code, out = await taskjet("schedules", "delete", "nightly")
    assert code == 2
    assert "add --yes" in out
    code, out = await taskjet("schedules", "delete", "nightly", "--yes")
    assert (code, out.strip()) == (0, "deleted nightly")
    assert await broker.schedules.get("nightly") is None


async def test_unknown_schedule_is_one_line(taskjet: Taskjet) -> None:
    for command in ("pause", "resume", "run"):
        code, out = await taskjet("schedules", command, "nope")
        assert (code, out.strip()) == (2, "error: no schedule 'nope'")
    code, out = await taskjet("schedules", "delete", "nope", "--yes")
    assert (code, out.strip()) == (2, "error: no schedule 'nope'")


async def test_a_schedule_in_code_is_listed_but_not_changed(
    taskjet: Taskjet, cli_env: dict[str, str]
) -> None:
    cli_env["TASKJET_WORKER_MODULES"] = "tests.support.scheduled"
    code, out = await taskjet("schedules", "list", "--json")
    (listed,) = json_lines(out)
    assert (listed["id"], listed["source"]) == ("every-2s", "code")
    code, out = await taskjet("schedules", "pause", "every-2s")
    assert code == 2
    assert "is declared in code (tests.support.scheduled:" in out
