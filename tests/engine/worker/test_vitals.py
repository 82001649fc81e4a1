"""A worker's own vitals and its liveness heartbeat (`taskjet alive`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from typer.testing import CliRunner

from src.cli import app
from src.engine.worker.vitals import Vitals, stale_heartbeats
from tests.conftest import StartWorker
from tests.support.processes import eventually


def test_mean_run_time_covers_recent_runs() -> None:
    vitals = Vitals()
    assert vitals.mean_run_s() is None
    vitals.observe(1.0, failed=False)
    vitals.observe(3.0, failed=True)
    assert (vitals.processed, vitals.failed, vitals.mean_run_s()) == (2, 1, 2.0)


def test_heartbeats_of_running_processes_must_be_fresh(tmp_path: Path) -> None:
    mine = tmp_path / str(os.getpid())
    mine.touch()
    assert stale_heartbeats(str(tmp_path), 30) == []
    old = time.time() - 120
    os.utime(mine, (old, old))
    (problem,) = stale_heartbeats(str(tmp_path), 30)
    assert f"worker process {os.getpid()}: no heartbeat for 12" in problem


def test_files_of_gone_processes_are_ignored_but_one_must_beat(tmp_path: Path) -> None:
    (tmp_path / "999999999").touch()  # no such process
    (tmp_path / "notes").touch()
    assert stale_heartbeats(str(tmp_path), 30) == [f"no worker process heartbeat in {tmp_path}"]
    missing = tmp_path / "missing"
    assert stale_heartbeats(str(missing), 30) == [f"no worker process heartbeat in {missing}"]


def test_alive_without_a_heartbeat_folder_says_so() -> None:
    result = CliRunner().invoke(app, ["alive"], env={"TASKJET_WORKER_HEARTBEAT_DIR": ""})
    assert result.exit_code == 2
    assert "TASKJET_WORKER_HEARTBEAT_DIR is not set" in result.output


async def test_a_stuck_worker_fails_its_liveness_probe(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    folder = tmp_path / "heartbeat"
    await start_worker(env_overrides={"TASKJET_WORKER_HEARTBEAT_DIR": str(folder)})
    (beat,) = await eventually(lambda: list(folder.glob("*")), what="a heartbeat file")
    runner = CliRunner()
    env = {"TASKJET_WORKER_HEARTBEAT_DIR": str(folder)}
    ok = runner.invoke(app, ["alive", "--max-age-s", "30"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output

    pid = int(beat.name)
    os.kill(pid, signal.SIGSTOP)  # its event loop stops, as a blocked one would
    try:
        await eventually(lambda: stale_heartbeats(str(folder), 1.0), what="heartbeat stale")
        stuck = runner.invoke(app, ["alive", "--max-age-s", "1"], env=env)
        assert stuck.exit_code == 2
        assert f"worker process {pid}: no heartbeat" in stuck.output
    finally:
        os.kill(pid, signal.SIGCONT)
    await eventually(lambda: not stale_heartbeats(str(folder), 1.0), what="beating again")


async def test_the_heartbeat_stops_with_the_lease_loop(tmp_path: Path) -> None:
    vitals = Vitals()
    checks: list[bool] = []
    leases_beat = [True]

    def beating() -> bool:
        checks.append(leases_beat[0])
        return leases_beat[0]

    watcher = asyncio.create_task(vitals.watch_loop(beating, str(tmp_path)))
    beat = tmp_path / str(os.getpid())
    await eventually(lambda: len(checks) >= 1, what="a check")
    assert beat.exists()
    leases_beat[0] = False
    old = time.time() - 600
    os.utime(beat, (old, old))
    seen = len(checks)
    await eventually(lambda: len(checks) >= seen + 2, what="two more checks")
    assert beat.stat().st_mtime == old, "not touched while the lease loop is stuck"
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    assert not beat.exists(), "removed when the worker stops"
