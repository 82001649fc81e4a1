"""taskjet's pytest fixtures (`src/testing.py`), used by a sample application's own tests
(`examples/shop`) in a pytest run of their own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.processes import ROOT, spawn

SHOP = ROOT / "examples" / "shop"


async def test_a_sample_application_tests_its_tasks_with_the_fixtures(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKJET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(SHOP)])
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    args += ["--basetemp", str(tmp_path / "shop"), str(SHOP)]
    proc = spawn(args, env, tmp_path / "shop.log")
    code = await proc.wait(240)
    output = proc.output()
    assert code == 0, output
    assert "4 passed" in output
