"""`taskjet worker` (`python -m src.launcher`): the worker processes' own manager. It passes
`taskiq worker`'s arguments on, keeps N processes running, restarts one that dies, stops them
all gracefully on SIGTERM, replaces them one by one on SIGHUP, stops for good when one cannot
start, and takes its processes with it when it is killed. Its own process loads no taskiq."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from src.engine.broker import JetStreamBroker
from src.launcher.__main__ import UsageError, split_arguments
from tests.conftest import StartWorker
from tests.support import fastapi_tasks, tasks
from tests.support.processes import ROOT, Proc, eventually


# Arguments ------------------------------------------------------------------------------------
def test_the_manager_reads_workers_and_max_fails_and_passes_the_rest_on() -> None:
    argv = ["b:broker", "m1", "--workers", "3", "--max-async-tasks", "5", "--max-fails=4"]
    assert split_arguments(argv) == (3, 4, ["b:broker", "m1", "--max-async-tasks", "5"])
    assert split_arguments(["b:broker", "-w", "1"]) == (1, -1, ["b:broker"])
    assert split_arguments(["b:broker", "--workers=2"])[0] == 2
    assert split_arguments(["b:broker"])[:2] == (2, -1)  # taskiq's defaults


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["b:broker", "--workers", "two"], "--workers needs a whole number, not 'two'"),
        (["b:broker", "--workers", "0"], "--workers must be at least 1"),
        (["b:broker", "--workers"], "--workers needs a whole number, not ''"),
        (["b:broker", "--reload"], "does not watch files"),
        (["--workers", "2"], "name the broker first"),
        ([], "name the broker first"),
    ],
)
def test_arguments_it_cannot_run_with_are_refused_by_name(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        split_arguments(argv)


def _run_briefly(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_usage_error_exits_2_with_one_clear_line() -> None:
    done = _run_briefly(sys.executable, "-m", "src.launcher", "b:broker", "--workers", "x")
    assert done.returncode == 2
    assert "taskjet worker: --workers needs a whole number, not 'x'" in done.stderr


def test_the_manager_process_loads_neither_taskiq_nor_pydantic() -> None:
    """Its footprint is the reason it exists: what it imports stays the standard library's."""
    probe = (
        "import sys, src.launcher.__main__, src.launcher.supervisor;"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'taskiq', 'pydantic', 'fastapi', 'aiohttp', 'nats', 'redis', 'httpx'});"
        "print(heavy)"
    )
    done = _run_briefly(sys.executable, "-c", probe)
    assert done.stdout.strip() == "[]", done.stderr


# Running ---------------------------------------------------------------------------------------
def _pids(worker: Proc) -> set[int]:
    return {child.pid for child in worker.children()}


async def _run(broker: JetStreamBroker, count: int) -> None:
    keys = [uuid.uuid4().hex for _ in range(count)]
    handles = [await tasks.count.kiq(key) for key in keys]
    results = await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))
    assert [r.return_value for r in results] == [1] * count, "each ran exactly once"


async def test_processes_run_tasks_and_one_that_dies_is_replaced(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    worker = await start_worker(workers=2, launcher=True)
    first = _pids(worker)
    assert len(first) == 2
    await eventually(
        lambda: "[worker-0]" in worker.output() and "[worker-1]" in worker.output(),
        what="both processes logging under their names",
    )
    await _run(broker, 20)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        now = _pids(worker)
        return len(now) == 2 and victim not in now

    await eventually(replaced, what="a fresh process in the dead one's place")
    assert f"(pid {victim}) ended with -9" in worker.output()
    await _run(broker, 20)
    assert await worker.stop() == 0
    assert "worker process 0" in worker.output()


async def test_worker_processes_load_fastapi_only_when_their_tasks_use_it(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    """taskiq would import FastAPI in every worker process (about 6 MB) to recognise its
    `Depends`; a worker whose tasks do not import FastAPI goes without it, one whose tasks
    use FastAPI's `Depends` still gets the value injected."""
    worker = await start_worker(launcher=True)
    handle = await tasks.loaded.kiq(["fastapi", "taskiq", "starlette"])
    assert (await handle.wait_result(timeout=60)).return_value == ["taskiq"]
    assert await worker.stop() == 0

    worker = await start_worker("tests.support.tasks", "tests.support.fastapi_tasks", launcher=True)
    handle = await fastapi_tasks.with_fastapi_depends.kiq()
    result = await handle.wait_result(timeout=60)
    assert not result.is_err, result.error
    assert result.return_value == 42
    assert await worker.stop() == 0


async def test_sigterm_lets_a_running_task_finish_then_everything_exits(
    broker: JetStreamBroker, start_worker: StartWorker, tmp_path: Path
) -> None:
    worker = await start_worker(workers=2, launcher=True)
    children = worker.children()
    started, gate = tmp_path / "started", tmp_path / "gate"
    handle = await tasks.file_gated.kiq(str(started), str(gate))
    await eventually(started.exists, what="the task running")
    worker.signal(signal.SIGTERM)
    await eventually(lambda: "Shutting down the broker" in worker.output(), what="stopping")
    assert worker.process.poll() is None, "the manager waits for its running task"
    gate.touch()
    assert (await handle.wait_result(timeout=60)).return_value == "through"
    assert await worker.wait() == 0
    await eventually(lambda: not any(c.alive() for c in children), what="every process gone")


async def test_sighup_replaces_every_process_one_after_the_other(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    worker = await start_worker(workers=2, launcher=True)
    first = _pids(worker)
    worker.signal(signal.SIGHUP)

    async def all_new() -> bool:
        now = _pids(worker)
        return len(now) == 2 and not now & first

    await eventually(all_new, what="two fresh processes")
    assert "SIGHUP: restarting 2 worker process(es)" in worker.output()
    await _run(broker, 10)


async def test_a_process_that_cannot_start_stops_it_all_with_its_reason(
    start_worker: StartWorker,
) -> None:
    worker = await start_worker(
        workers=2, launcher=True, extra=("--ack-type", "when_received"), wait=False
    )
    assert await worker.wait(60) == 2
    output = worker.output()
    assert "--ack-type when_received would acknowledge tasks before their results" in output
    assert "cannot start; stopping" in output
    assert "restarting" not in output


async def test_killing_the_manager_takes_its_processes_with_it(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    worker = await start_worker(workers=2, launcher=True)
    children = worker.children()
    assert len(children) == 2
    worker.process.kill()
    worker.process.wait(10)
    await eventually(
        lambda: not any(c.alive() for c in children), what="orphaned processes stopping"
    )


def test_taskjet_worker_is_the_launcher_with_the_same_arguments() -> None:
    taskjet = str(Path(sys.executable).parent / "taskjet")
    done = _run_briefly(taskjet, "worker", "b:broker", "--workers", "0")
    assert done.returncode == 2
    assert "taskjet worker: --workers must be at least 1, not 0" in done.stderr
