"""One ticker replica on a simulated clock, run as a process of its own by
`test_zones_across_processes.py`: the real `Ticker` of a real broker, publishing to the test's
NATS and recording in its Redis, while its clock walks through hours, days, zones and clock
changes in seconds.

    python -m tests.engine.scheduling.sim_replica <key> <phase_s>

The clock steps 1 s within 90 s of a tick the rule should fire (where a rule at the wrong
resolution would fire again) and 55 s elsewhere (under the 60 s after which a tick is too late,
so any tick the rule hands out is still fired). Replicas start at different phases.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

from src.engine.scheduling.schedules import Schedule, Ticker
from src.tasks.broker import broker
from tests.engine.scheduling.helpers import TICK_TASK
from tests.engine.scheduling.test_ticks import CASES
from tests.support import tasks  # noqa: F401  (registers the tick task)

# Hour, day in a zone, and both of Europe/Berlin's clock changes, at hour and day resolution.
CROSS_PROCESS = ("hourly", "daily-9-kolkata", "fall-hourly", "spring-gap-0230", "fall-twice-0230")
_NEAR_S, _FINE_S, _COARSE_S = 90.0, 1.0, 55.0


def rule_of(case: str, key: str) -> Schedule:
    rule = CASES[case][0]
    return rule.model_copy(
        update={"id": case, "task": TICK_TASK, "kwargs": {"key": f"{key}-{case}"}}
    )


def clock(start: float, end: float, expected: list[float], phase_s: float) -> Iterator[float]:
    now = start + phase_s
    while now <= end:
        yield now
        near = any(abs(now - tick) < _NEAR_S for tick in expected)
        now += _FINE_S if near else _COARSE_S


async def main(key: str, phase_s: float) -> None:
    await broker.startup()
    try:
        for case in CROSS_PROCESS:
            _, start, end, expected = CASES[case]
            ticker = Ticker(
                broker.schedules,
                broker.find_task,
                [rule_of(case, key)],
                broker.settings.duplicate_window_s,
                interval_s=1.0,
            )
            for now in clock(start, end, expected, phase_s):
                await ticker.tick(now)
    finally:
        await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
