"""`taskjet events`: a live tail that sees a task's whole life, filters, resumes from a
sequence, and ends cleanly on Ctrl-C."""

from __future__ import annotations

import signal

from src.engine.broker import JetStreamBroker
from tests.cli.conftest import StartTaskjet, Taskjet, json_lines
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import Proc, eventually


async def _following(proc: Proc) -> None:
    async def ready() -> bool:
        if proc.process.poll() is not None:
            raise AssertionError(f"exited early:\n{proc.output()}")
        return "following " in proc.output()

    await eventually(ready, what="the tail follows")


async def _ctrl_c(proc: Proc) -> str:
    proc.signal(signal.SIGINT)
    assert await proc.wait(30) == 0, proc.output()
    output = proc.output()
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output
    return output


async def test_the_tail_sees_a_task_s_whole_life_and_stops_cleanly_on_ctrl_c(
    broker: JetStreamBroker, start_worker: StartWorker, start_taskjet: StartTaskjet
) -> None:
    await start_worker()
    tail = start_taskjet("events", "--json")
    await _following(tail)
    handle = await tasks.stepper.kiq(2)
    assert (await handle.wait_result(timeout=60)).return_value == 2

    async def completed() -> bool:
        return any(
            e["event"]["task_id"] == handle.task_id and e["event"]["status"] == "completed"
            for e in json_lines(tail.output())
        )

    await eventually(completed, what="the completed event in the tail")
    output = await _ctrl_c(tail)
    life = [
        e["event"]["status"] for e in json_lines(output) if e["event"]["task_id"] == handle.task_id
    ]
    assert life == ["started", "processing", "processing", "completed"]
    last = json_lines(output)[-1]["sequence"]
    assert output.strip().endswith(f"stopped after 4 event(s); resume with --from-seq {last}")


async def test_filters_and_resume_from_a_sequence(
    broker: JetStreamBroker,
    start_worker: StartWorker,
    start_taskjet: StartTaskjet,
    taskjet: Taskjet,
) -> None:
    await start_worker()
    first = await tasks.stepper.kiq(1)
    await first.wait_result(timeout=60)
    second = await tasks.stepper.kiq(1)
    await second.wait_result(timeout=60)

    async def tail_until(*args: str, lines: int) -> list[dict[str, object]]:
        proc = start_taskjet("events", "--json", *args)
        await eventually(
            lambda: len(json_lines(proc.output())) >= lines, what=f"{lines} event(s) tailed"
        )
        return json_lines(await _ctrl_c(proc))

    # Events are published without waiting: the last one may land after the result.
    everything = await tail_until("--from-seq", "0", lines=6)
    mine = await tail_until(
        "--from-seq", "0", "--task", second.task_id, "--state", "SUCCESS", lines=1
    )
    assert [(e["event"]["task_id"], e["event"]["status"]) for e in mine] == [  # type: ignore[index]
        (second.task_id, "completed")
    ]
    first_done = next(
        e["sequence"]
        for e in everything
        if e["event"]["task_id"] == first.task_id and e["event"]["status"] == "completed"  # type: ignore[index]
    )
    after = await tail_until("--from-seq", str(first_done), lines=3)
    assert {e["event"]["task_id"] for e in after} == {second.task_id}  # type: ignore[index]
    assert all(e["sequence"] > first_done for e in after)  # type: ignore[operator]

    mobile = await tasks.stepper.kicker().with_labels(client_id="mobile-7").kiq(1)
    await mobile.wait_result(timeout=60)
    theirs = await tail_until("--from-seq", "0", "--client", "mobile-7", lines=3)
    assert {e["event"]["task_id"] for e in theirs} == {mobile.task_id}  # type: ignore[index]
    assert [e["event"]["status"] for e in theirs][-1] == "completed"  # type: ignore[index]

    code, out = await taskjet("events", "--state", "finished")
    assert code == 2
    assert "no state 'finished'" in out
