"""What the periodic-schedule tests share: the counting task, planted garbage, tick checks."""

from __future__ import annotations

import itertools
import json
import uuid

from src.engine.broker import JetStreamBroker
from tests.conftest import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TICK_TASK = "tests.support.tasks:tick"

# What an older version, or a hand, may have left in the schedules hash.
_DEFINITION = {"task": "add", "timezone": "UTC", "kwargs": {"a": 1.0, "b": 2.0}}
PLANTED = {
    "not-json": "{oops",
    "feb-30": json.dumps({**_DEFINITION, "id": "feb-30", "cron": "0 0 30 2 *"}),
    "random": json.dumps({**_DEFINITION, "id": "random", "cron": "R * * * *"}),
    "no-task": json.dumps({"id": "no-task", "interval": 5}),
}


def new_key() -> str:
    return uuid.uuid4().hex


async def ran_ticks(broker: JetStreamBroker, key: str) -> dict[float, int]:
    """Runs per scheduled tick, as the `tick` task counts them."""
    raw = await broker.results.redis.hgetall(f"test-ticks:{key}")
    return {float(k): int(v) for k, v in raw.items()}


async def plant(broker: JetStreamBroker, entries: dict[str, str]) -> None:
    await broker.results.redis.hset(broker.layout.schedules_key, mapping=entries)


def assert_once_each(ticks: dict[float, int], period_s: float) -> None:
    """Each tick ran once, on the period's grid, and no period between them was missed."""
    assert all(count == 1 for count in ticks.values()), f"a tick ran twice: {ticks}"
    times = sorted(ticks)
    assert all(t % period_s == 0 for t in times), f"ticks off the {period_s}s grid: {times}"
    assert all(b - a == period_s for a, b in itertools.pairwise(times)), f"gap: {times}"
