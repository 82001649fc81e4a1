"""The run's check for processes left behind: it sees what a test started and did not stop,
orphans in sessions of their own included, and kills them (see tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from src.embedded import started_at
from tests.support.processes import (
    RUN_MARK,
    ProcessInfo,
    eventually,
    kill_all,
    left_behind,
    marked_processes,
    spawn,
)


def _find(pid: int, temp_root: Path | None = None) -> ProcessInfo | None:
    return next((p for p in marked_processes(temp_root) if p.pid == pid), None)


async def test_a_process_left_running_is_found_and_killed(tmp_path: Path) -> None:
    proc = spawn(["sleep", "600"], dict(os.environ), tmp_path / "sleep.log")
    try:
        found = _find(proc.process.pid)
        assert found is not None
        assert found.command == "sleep 600"
        assert found in left_behind(grace_s=0)
        kill_all([found])
        assert not found.alive()
        assert _find(proc.process.pid) is None
        assert found not in left_behind(grace_s=0)
    finally:
        proc.kill()


async def test_an_orphan_in_a_session_of_its_own_is_found(tmp_path: Path) -> None:
    """Like a `taskiq worker` manager whose parent died: neither our child nor in our group."""
    proc = spawn(["sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!"],
                 dict(os.environ), tmp_path / "orphan.log")  # fmt: skip
    assert await proc.wait() == 0
    pid = int(proc.output().split()[-1])

    async def found() -> ProcessInfo | None:
        info = _find(pid)
        return info if info is not None and info.command == "sleep 600" else None

    orphan = await eventually(found, what="the orphan seen")
    try:
        assert os.getsid(pid) == pid, "in a session of its own"
        assert orphan in left_behind(grace_s=0)
    finally:
        kill_all([orphan])
    assert not orphan.alive()
    assert _find(pid) is None


async def test_a_process_working_in_the_run_temp_dir_is_found(tmp_path: Path) -> None:
    """redis-server writes its title over its environment, mark included; its data directory
    (its working directory) is in the run's temporary directory."""
    proc = spawn(["sh", "-c", f"cd {tmp_path} && exec env -u {RUN_MARK} sleep 600"],
                 dict(os.environ), tmp_path / "unmarked.log")  # fmt: skip
    try:

        async def exec_done() -> bool:
            info = ProcessInfo.of(proc.process.pid)
            return info is not None and info.command == "sleep 600"

        await eventually(exec_done, what="sleep running")
        assert _find(proc.process.pid) is None, "no mark"
        found = _find(proc.process.pid, temp_root=tmp_path.parent)
        assert found is not None
        kill_all([found])
        assert not found.alive()
    finally:
        proc.kill()


async def test_a_child_started_to_die_with_its_parent_stops_when_the_parent_is_killed(
    tmp_path: Path,
) -> None:
    """The servers and the processes tests start get SIGTERM when their starter dies, even by
    SIGKILL, when no cleanup runs at all (`die_with_parent`)."""
    launcher = (
        "import subprocess, sys, time\n"
        "from src.embedded import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '600'], preexec_fn=die_with_parent,"
        " start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = spawn([sys.executable, "-c", launcher], dict(os.environ), tmp_path / "launcher.log")

    async def child_pid() -> int | None:
        words = proc.output().split()
        return int(words[0]) if words and words[0].isdigit() else None

    pid = await eventually(child_pid, what="the child started")
    assert started_at(pid) is not None
    os.kill(proc.process.pid, signal.SIGKILL)

    async def gone() -> bool:
        return started_at(pid) is None

    await eventually(gone, what="the child stopped with its parent")
    assert await proc.wait() == -signal.SIGKILL
