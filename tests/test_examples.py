"""The runnable applications in `examples/`: each one's own tests, in a pytest run of their own
(as an application runs them, with taskjet's fixtures from `src.testing`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from src.embedded import free_port
from tests.support.processes import ROOT, eventually, spawn

EXAMPLES = {"literature_miner": 4, "periodic_jobs": 4, "report_export": 3, "summariser": 3}


@pytest.mark.parametrize(("name", "tests"), sorted(EXAMPLES.items()))
async def test_an_example_passes_its_own_tests(name: str, tests: int, tmp_path: Path) -> None:
    folder = ROOT / "examples" / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKJET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(folder)])
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    args += ["--basetemp", str(tmp_path / name), str(folder)]
    proc = spawn(args, env, tmp_path / f"{name}.log")
    code = await proc.wait(240)
    output = proc.output()
    assert code == 0, output
    assert f"{tests} passed" in output


async def test_an_example_starts_with_one_command_and_stops_with_ctrl_c(tmp_path: Path) -> None:
    """`make example NAME=report_export`: servers, API and worker with the example's tasks, then
    its app; an export runs through it; SIGINT stops everything (the fixtures check nothing is
    left running)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKJET_")}
    api_port, app_port = free_port(), free_port()
    args = [sys.executable, "examples/run.py", "report_export", "--data-dir", str(tmp_path)]
    args += ["--api-port", str(api_port), "--port", str(app_port)]
    proc = spawn(args, env, tmp_path / "example.log")
    app = f"http://127.0.0.1:{app_port}"
    try:
        await eventually(lambda: f"app {app}" in proc.output(), 120, "the example's app")
        async with httpx.AsyncClient(base_url=app, timeout=30) as http:

            async def up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get("/docs")).status_code == 200
                return False

            await eventually(up, 60, "the app answering")
            started = await http.post("/export/json", params={"rows": 5})
            assert started.status_code == 202, started.text

            async def done() -> Any:
                status = (await http.get(started.json()["status_url"])).json()
                return status if status["state"] == "SUCCESS" else None

            status = await eventually(done, 60, "the export done")
        assert status["download_url"].startswith(f"http://127.0.0.1:{api_port}/api/v1/tasks/")
        proc.signal(signal.SIGINT)
        assert await proc.wait(90) == 0, proc.output()
    finally:
        await proc.stop_group()
