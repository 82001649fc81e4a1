"""Each period once at its own resolution, across processes: three ticker replicas walk a
simulated clock through an hourly rule, a daily one in Asia/Kolkata and Europe/Berlin's two
clock changes (`sim_replica.py`), publishing to one real NATS; a real worker runs what they
dispatch. Every tick the rule owes runs exactly once, and nothing else runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from src.engine.broker import JetStreamBroker
from tests.conftest import StartWorker
from tests.engine.scheduling.helpers import new_key, ran_ticks
from tests.engine.scheduling.sim_replica import CROSS_PROCESS
from tests.engine.scheduling.test_ticks import CASES, show
from tests.support.processes import eventually, spawn

REPLICAS = 3


@pytest.mark.timeout(300)
async def test_hours_days_zones_and_clock_changes_fire_once_across_replicas(
    broker: JetStreamBroker, start_worker: StartWorker, env: dict[str, str], tmp_path: Path
) -> None:
    key = new_key()
    await start_worker("tests.support.tasks")
    replica_env = {**env, "TASKJET_SCHEDULER": "false"}
    replicas = [
        spawn(
            [sys.executable, "-m", "tests.engine.scheduling.sim_replica", key, f"{0.37 * i:.2f}"],
            replica_env,
            tmp_path / f"replica-{i}.log",
        )
        for i in range(REPLICAS)
    ]
    try:
        for replica in replicas:
            assert await replica.wait(timeout_s=240) == 0, replica.output()
    finally:
        for replica in replicas:
            await replica.stop()

    for case in CROSS_PROCESS:
        expected = CASES[case][3]

        async def all_ran(case: str = case, count: int = len(expected)) -> dict[float, int] | None:
            ticks = await ran_ticks(broker, f"{key}-{case}")
            return ticks if len(ticks) >= count else None

        ran = await eventually(all_ran, timeout_s=60, what=f"the ticks of {case}")
        assert [show(t) for t in sorted(ran)] == [show(t) for t in expected], case
        assert set(ran.values()) == {1}, f"{case}: a tick ran twice: {ran}"
