"""Priorities: three lanes per queue, taken from in a weighted order.

The `priority` label is 0-9 (9 most urgent) or `high` / `default` / `low`: 7-9 go to the high
lane, 3-6 (and unset) to the normal lane, 0-2 to the low lane. Each lane is its own subject and
consumer. When a worker has room it fills it from the lanes in order, high first, giving each
a share of the room (high 60 %, normal 30 %, low 10 %, a share a lane cannot use passing on
down): under a backlog urgent tasks start first, and the low lane still moves (no starvation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from src.engine.core.errors import LabelError

Lane = Literal["high", "normal", "low"]
LANES: tuple[Lane, ...] = ("high", "normal", "low")
WEIGHTS: dict[Lane, float] = {"high": 0.6, "normal": 0.3, "low": 0.1}
_NAMED: dict[str, Lane] = {"high": "high", "default": "normal", "normal": "normal", "low": "low"}


def lane_of(labels: Mapping[str, Any]) -> Lane:
    value = labels.get("priority")
    if value is None:
        return "normal"
    if isinstance(value, str) and value.lower() in _NAMED:
        return _NAMED[value.lower()]
    try:
        level = int(value)
    except (TypeError, ValueError):
        raise LabelError(f"priority {value!r} must be 0-9 or high/default/low") from None
    if not 0 <= level <= 9 or isinstance(value, bool):
        raise LabelError(f"priority {value!r} must be 0-9 or high/default/low")
    return "high" if level >= 7 else "low" if level <= 2 else "normal"


def shares(room: int) -> list[tuple[Lane, int]]:
    """How much of `room` each lane may fill first, in the order they are asked."""
    out: list[tuple[Lane, int]] = []
    left = room
    for lane in LANES:
        share = left if lane == "low" else min(left, max(1, round(room * WEIGHTS[lane])))
        out.append((lane, share))
        left -= share
    return out
