"""The benchmark harness runs end to end: a quick, tiny run of taskjet alone.

No timing thresholds here: only that every figure is produced and is a sane number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from tests.support.processes import ROOT


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_quick_run_of_taskjet_writes_table_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench", "--quick", "--systems", "taskjet", "--workers", "1",
        "--tasks", "40", "--extra-tasks", "200", "--http-paths", "/process",
        "--http-seconds", "0.2", "--latency-seconds", "0.2", "--out", str(out), "--name", "smoke",
    ]  # fmt: skip
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    table = (out / "smoke.md").read_text()
    assert "## End-to-end throughput" in table
    assert "| noop | 1 |" in table
    assert table.strip() in run.stdout  # the table is printed as well

    results = json.loads((out / "smoke.json").read_text())
    assert results["failures"] == []
    cells = results["cells"]
    assert {c["workload"] for c in cells} == {"noop", "io1ms", "sleep100", "cpu"}
    for cell in cells:
        assert cell["system"] == "taskjet"
        assert cell["errors"] == []
        assert cell["tasks"] >= 1
        assert _finite_positive(cell["throughput_median"])
        assert _finite_positive(cell["enqueue_median"])
        assert 10 < cell["peak_rss_mb"] < 10_000
        if cell["workload"] in ("noop", "io1ms"):
            latency = cell["latency"]
            assert latency["complete"]
            assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
            assert cell["workload"] != "io1ms" or latency["p50"] >= 1.0  # it sleeps 1 ms
        else:
            assert cell["latency"] is None

    (idle,) = results["idle"]
    assert len(idle["per_process_mb"]) == 2  # `taskiq worker` manager + one worker process
    assert all(10 < mb < 10_000 for mb in idle["per_process_mb"])

    extras = results["extras"]
    assert len(extras["enqueue"]) == 4
    assert all(_finite_positive(fig["median"]) for fig in extras["enqueue"].values())
    for fig in extras["http"]:
        assert _finite_positive(fig.get("median")) or fig.get("notice")

    if find_spec("matplotlib") is not None:
        assert (out / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
