"""`taskjet` commands run as a user runs them: a child process with the test's settings, and
the test suite's task modules loaded (as the workers have them)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import Proc, spawn

Taskjet = Callable[..., Awaitable[tuple[int, str]]]
StartTaskjet = Callable[..., Proc]


@pytest.fixture
def cli_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TASKJET_WORKER_MODULES": "tests.support.tasks"}


@pytest.fixture
def taskjet(cli_env: dict[str, str], tmp_path: Path) -> Taskjet:
    """`await taskjet("inspect", "active")` → (exit status, stdout and stderr)."""

    async def run(*args: str, timeout_s: float = 60) -> tuple[int, str]:
        log = tmp_path / f"taskjet-{len(list(tmp_path.glob('taskjet-*.log')))}.log"
        proc = spawn([sys.executable, "-m", "src", *args], cli_env, log)
        code = await proc.wait(timeout_s)
        return code, proc.output()

    return run


@pytest.fixture
def start_taskjet(cli_env: dict[str, str], tmp_path: Path) -> Iterator[StartTaskjet]:
    """`start_taskjet("events")` → the running command (killed at the end if still there)."""
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        log = tmp_path / f"taskjet-bg-{len(started)}.log"
        proc = spawn([sys.executable, "-m", "src", *args], cli_env, log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
