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
from typing import Any

import pytest

from tests.support.processes import ROOT


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _assert_figures(cell: dict[str, Any]) -> None:
    """Every figure of one cell was measured and is a sane number."""
    assert cell["errors"] == [], cell
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


def _run_ok(command: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a bench command from the repo; it must exit 0 (its output's tail if not)."""
    run = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def test_quick_run_of_taskjet_writes_table_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench", "--quick", "--systems", "taskjet", "--workers", "1",
        "--tasks", "40", "--extra-tasks", "200", "--http-paths", "/process",
        "--http-seconds", "0.2", "--latency-seconds", "0.2", "--out", str(out), "--name", "smoke",
    ]  # fmt: skip
    run = _run_ok(command, 120)

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
        _assert_figures(cell)

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


@pytest.mark.timeout(420)
def test_quick_run_of_saq_and_streaq_measures_every_figure(tmp_path: Path) -> None:
    """The async Redis peers run by their own CLIs, 1 and 2 worker processes (SAQ's workers on
    their own venv, made on first use: that can take a minute)."""
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench", "--quick", "--systems", "saq,streaq", "--workers", "1,2",
        "--tasks", "40", "--latency-seconds", "0.2", "--no-extras", "--out", str(out),
        "--name", "peers",
    ]  # fmt: skip
    _run_ok(command, 400)

    table = (out / "peers.md").read_text()
    assert "| workload | workers | saq | streaq |" in table
    results = json.loads((out / "peers.json").read_text())
    assert results["failures"] == []
    cells = results["cells"]
    assert {(c["system"], c["workers"], c["workload"]) for c in cells} == {
        (system, workers, workload)
        for system in ("saq", "streaq")
        for workers in (1, 2)
        for workload in ("noop", "io1ms", "sleep100", "cpu")
    }
    for cell in cells:
        _assert_figures(cell)
    # Both CLIs run a worker in the parent process and start N - 1 more.
    assert sorted((i["system"], len(i["per_process_mb"])) for i in results["idle"]) == [
        ("saq", 1), ("saq", 2), ("streaq", 1), ("streaq", 2),
    ]  # fmt: skip


def test_footprint_measures_both_managers(tmp_path: Path) -> None:
    out = tmp_path / "footprint.json"
    command = [sys.executable, "-m", "bench.footprint", "--tasks", "200", "--workers", "1"]
    run = _run_ok([*command, "--out", str(out)], 180)
    rows = json.loads(out.read_text())["rows"]
    assert {r["manager"] for r in rows} == {"taskjet worker", "taskiq worker"}
    for row in rows:
        for figures in (row["idle"], row["after"]):
            assert 10 < figures["uss"] <= figures["pss"] <= figures["rss"] < 10_000, row
    assert "| `taskjet worker` | 1 |" in run.stdout


@pytest.mark.timeout(300)
def test_the_latency_floor_reference_runs_beside_its_peer_and_is_no_peer(tmp_path: Path) -> None:
    """taskiq-nats+mark (taskiq-nats plus one Redis write before each run) is measured in the
    same run as taskiq-nats and taskjet, is checked against taskiq-nats as goal 2's floor, and
    is left out of the goals' "every peer"."""
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench", "--quick", "--systems",
        "taskjet,taskiq-nats,taskiq-nats+mark", "--workers", "1", "--workloads", "noop",
        "--tasks", "40", "--latency-seconds", "0.2", "--no-extras", "--out", str(out),
        "--name", "floor",
    ]  # fmt: skip
    _run_ok(command, 280)

    results = json.loads((out / "floor.json").read_text())
    assert results["failures"] == []
    cells = {c["system"]: c for c in results["cells"]}
    assert set(cells) == {"taskjet", "taskiq-nats", "taskiq-nats+mark"}
    for cell in cells.values():
        _assert_figures(cell)
    table = (out / "floor.md").read_text()
    goals = table[table.index("## Performance goals") :]
    floor = next(line for line in goals.splitlines() if "(reference) taskiq-nats+mark" in line)
    assert "against taskiq-nats" in floor
    assert floor.rstrip().endswith("| — |")  # a reference: neither met nor missed
    every_peer = next(line for line in goals.splitlines() if "every peer" in line)
    assert "taskiq-nats+mark" not in every_peer


async def test_the_start_mark_writes_before_the_task_runs(servers: Any) -> None:
    """The reference's one extra step: a Redis write, awaited before the run."""
    from redis.asyncio import Redis
    from taskiq import TaskiqMessage

    from bench.systems.taskiq_peers import StartMark

    url = servers.redis.url
    mark = StartMark(url, "floor-test")
    message = TaskiqMessage(task_id="t1", task_name="bench.noop", labels={}, args=[], kwargs={})
    redis = Redis.from_url(url)
    try:
        assert await mark.pre_execute(message) is message
        assert await redis.hget("floor-test:record:t1", "state") == b"STARTED"
        await redis.delete("floor-test:record:t1")
    finally:
        await mark.shutdown()
        await redis.aclose()
