"""Priority lanes and the share of a worker's room each one gets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.engine.core.errors import LabelError
from src.engine.core.priority import LANES, lane_of, shares


@pytest.mark.parametrize(
    ("priority", "lane"),
    [
        (None, "normal"), (0, "low"), (2, "low"), (3, "normal"), (6, "normal"), (7, "high"),
        (9, "high"), ("high", "high"), ("HIGH", "high"), ("default", "normal"),
        ("normal", "normal"), ("low", "low"), ("8", "high"),
    ],
)  # fmt: skip
def test_lane_of(priority: Any, lane: str) -> None:
    assert lane_of({} if priority is None else {"priority": priority}) == lane


@pytest.mark.parametrize("priority", [-1, 10, "urgent", 1.5j, True, [9]])
def test_bad_priorities_are_refused(priority: Any) -> None:
    with pytest.raises(LabelError, match="priority"):
        lane_of({"priority": priority})


@pytest.mark.parametrize(
    ("room", "expected"),
    [
        (1, [("high", 1), ("normal", 0), ("low", 0)]),
        (2, [("high", 1), ("normal", 1), ("low", 0)]),
        (3, [("high", 2), ("normal", 1), ("low", 0)]),
        (10, [("high", 6), ("normal", 3), ("low", 1)]),
        (64, [("high", 38), ("normal", 19), ("low", 7)]),
    ],
)
def test_shares_are_weighted_high_first(room: int, expected: list[tuple[str, int]]) -> None:
    assert shares(room) == expected


@given(st.integers(min_value=1, max_value=10_000))
def test_shares_add_up_to_the_room_and_every_lane_is_asked(room: int) -> None:
    split = shares(room)
    assert [lane for lane, _ in split] == list(LANES)
    assert sum(n for _, n in split) == room
    assert all(n >= 0 for _, n in split)
    if room >= 10:
        assert dict(split)["low"] >= 1, "the low lane is never starved"
