"""Which tick of a schedule fires when: pure functions, driven by a simulated clock.

The clock advances in quarter seconds over several periods of each rule; every period must
hand out exactly one tick, at its own time (the start of the minute for five cron fields,
of the second for six), within one step of the clock. Europe/Berlin's clock changes of 2026
(29 March, 25 October) are crossed on fixed instants.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from src.engine.scheduling.schedules import Schedule, ScheduleError, TickPlan

BERLIN = ZoneInfo("Europe/Berlin")
STEP_S = 0.25


def utc(*fields: int) -> float:
    return datetime(*fields).replace(tzinfo=UTC).timestamp()


def berlin(*fields: int, fold: int = 0) -> float:
    return datetime(*fields).replace(tzinfo=BERLIN, fold=fold).timestamp()


def show(instant: float) -> str:
    return datetime.fromtimestamp(instant, BERLIN).isoformat()


def schedule(cron: str | None = None, timezone: str = "UTC", **fields: Any) -> Schedule:
    fields.setdefault("created_at", 0.0)
    return Schedule(id="s", task="t", cron=cron, timezone=timezone, **fields)


def fired(rule: Schedule, start: float, end: float, step: float = STEP_S) -> list[float]:
    """The ticks handed out while a clock steps from `start` to `end`, each checked to fire
    within one step of its time. What was due at `start` itself belongs to no period here."""
    plan = TickPlan(too_late_s=60)
    plan.due(rule, start)
    ticks: list[float] = []
    for n in range(1, round((end - start) / step) + 1):
        now = start + n * step
        tick = plan.due(rule, now)
        if tick is not None:
            assert 0 <= now - tick < step, f"tick {show(tick)} fired at {show(now)}"
            ticks.append(tick)
    return ticks


def every(start: float, end: float, period_s: float) -> list[float]:
    """Instants in (start, end] on a grid of `period_s` from the epoch."""
    first = (start // period_s + 1) * period_s
    return [first + k * period_s for k in range(int((end - first) // period_s) + 1)]


def days(zone: ZoneInfo, first: datetime, count: int, hour: int, minute: int = 0) -> list[float]:
    return [
        datetime.combine(first.date() + timedelta(days=d), datetime.min.time(), zone)
        .replace(hour=hour, minute=minute)
        .timestamp()
        for d in range(count)
    ]


# Each period once, at its own resolution ------------------------------------------------------
Case = tuple[Schedule, float, float, list[float]]  # rule, clock from, clock to, expected ticks
CASES: dict[str, Case] = {
    "every-minute": (
        schedule("* * * * *"),
        utc(2026, 5, 4, 10, 0, 20),
        utc(2026, 5, 4, 10, 4, 20),
        every(utc(2026, 5, 4, 10, 0, 20), utc(2026, 5, 4, 10, 4, 20), 60),
    ),
    "hourly": (
        schedule("0 * * * *"),
        utc(2026, 5, 4, 10, 30),
        utc(2026, 5, 4, 14, 30),
        every(utc(2026, 5, 4, 10, 30), utc(2026, 5, 4, 14, 30), 3600),
    ),
    "daily-9": (
        schedule("0 9 * * *"),
        utc(2026, 5, 4, 12),
        utc(2026, 5, 7, 12),
        [utc(2026, 5, 5, 9), utc(2026, 5, 6, 9), utc(2026, 5, 7, 9)],
    ),
    "every-second": (
        schedule("* * * * * *"),
        utc(2026, 5, 4, 10, 0, 0) + 0.1,
        utc(2026, 5, 4, 10, 0, 12),
        every(utc(2026, 5, 4, 10, 0, 0), utc(2026, 5, 4, 10, 0, 12), 1),
    ),
    "every-10-s": (
        schedule("* * * * * */10"),
        utc(2026, 5, 4, 10, 0, 3),
        utc(2026, 5, 4, 10, 1, 3),
        every(utc(2026, 5, 4, 10, 0, 3), utc(2026, 5, 4, 10, 1, 3), 10),
    ),
    "every-minute-berlin": (
        schedule("* * * * *", "Europe/Berlin"),
        utc(2026, 5, 4, 10, 0, 20),
        utc(2026, 5, 4, 10, 3, 20),
        every(utc(2026, 5, 4, 10, 0, 20), utc(2026, 5, 4, 10, 3, 20), 60),
    ),
    "daily-9-berlin": (
        schedule("0 9 * * *", "Europe/Berlin"),
        utc(2026, 5, 4, 12),
        utc(2026, 5, 7, 12),
        days(BERLIN, datetime(2026, 5, 5), 3, 9),
    ),
    "daily-9-kolkata": (  # a half-hour offset: 09:00 there is 03:30 UTC
        schedule("0 9 * * *", "Asia/Kolkata"),
        utc(2026, 5, 4, 12),
        utc(2026, 5, 6, 12),
        [utc(2026, 5, 5, 3, 30), utc(2026, 5, 6, 3, 30)],
    ),
    "interval-7-s": (
        schedule(interval=7),
        utc(2026, 5, 4, 10, 0, 1),
        utc(2026, 5, 4, 10, 1, 1),
        every(utc(2026, 5, 4, 10, 0, 1), utc(2026, 5, 4, 10, 1, 1), 7),
    ),
    # Spring forward: 02:00 CET becomes 03:00 CEST (01:00 UTC) on 29 March 2026.
    "spring-every-minute": (
        schedule("* * * * *", "Europe/Berlin"),
        utc(2026, 3, 29, 0, 57, 30),
        utc(2026, 3, 29, 1, 3, 30),
        every(utc(2026, 3, 29, 0, 57, 30), utc(2026, 3, 29, 1, 3, 30), 60),
    ),
    "spring-hourly": (  # 01:00 CET, then 03:00 CEST: one tick in every real hour
        schedule("0 * * * *", "Europe/Berlin"),
        utc(2026, 3, 28, 22, 30),
        utc(2026, 3, 29, 3, 30),
        every(utc(2026, 3, 28, 22, 30), utc(2026, 3, 29, 3, 30), 3600),
    ),
    "spring-daily-9": (
        schedule("0 9 * * *", "Europe/Berlin"),
        utc(2026, 3, 27, 12),
        utc(2026, 3, 31, 12),
        days(BERLIN, datetime(2026, 3, 28), 4, 9),
    ),
    "spring-every-10-s": (
        schedule("* * * * * */10", "Europe/Berlin"),
        utc(2026, 3, 29, 0, 59, 1),
        utc(2026, 3, 29, 1, 1, 1),
        every(utc(2026, 3, 29, 0, 59, 1), utc(2026, 3, 29, 1, 1, 1), 10),
    ),
    # Fall back: 03:00 CEST becomes 02:00 CET (01:00 UTC) on 25 October 2026.
    "fall-every-minute": (
        schedule("* * * * *", "Europe/Berlin"),
        utc(2026, 10, 25, 0, 57, 30),
        utc(2026, 10, 25, 1, 3, 30),
        every(utc(2026, 10, 25, 0, 57, 30), utc(2026, 10, 25, 1, 3, 30), 60),
    ),
    "fall-hourly": (  # 02:00 CEST and 02:00 CET are two hours: each fires
        schedule("0 * * * *", "Europe/Berlin"),
        utc(2026, 10, 24, 22, 30),
        utc(2026, 10, 25, 3, 30),
        every(utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30), 3600),
    ),
    "fall-daily-9": (
        schedule("0 9 * * *", "Europe/Berlin"),
        utc(2026, 10, 23, 12),
        utc(2026, 10, 27, 12),
        days(BERLIN, datetime(2026, 10, 24), 4, 9),
    ),
    "fall-every-10-s": (
        schedule("* * * * * */10", "Europe/Berlin"),
        utc(2026, 10, 25, 0, 59, 1),
        utc(2026, 10, 25, 1, 1, 1),
        every(utc(2026, 10, 25, 0, 59, 1), utc(2026, 10, 25, 1, 1, 1), 10),
    ),
    # A local time the clocks skip fires once, at 03:00 CEST, when they jump.
    "spring-gap-0230": (
        schedule("30 2 * * *", "Europe/Berlin"),
        utc(2026, 3, 27, 12),
        utc(2026, 3, 30, 12),
        [berlin(2026, 3, 28, 2, 30), berlin(2026, 3, 29, 3, 0), berlin(2026, 3, 30, 2, 30)],
    ),
    "spring-gap-quarters": (
        schedule("*/15 2 * * *", "Europe/Berlin"),
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 4),
        [berlin(2026, 3, 29, 3, 0)],
    ),
    # A local time that happens twice fires once, the first time (summer time).
    "fall-twice-0230": (
        schedule("30 2 * * *", "Europe/Berlin"),
        utc(2026, 10, 24, 12),
        utc(2026, 10, 26, 12),
        [berlin(2026, 10, 25, 2, 30, fold=0), berlin(2026, 10, 26, 2, 30)],
    ),
    "fall-twice-quarters": (
        schedule("*/15 2 * * *", "Europe/Berlin"),
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 25, 3),
        [berlin(2026, 10, 25, 2, minute, fold=0) for minute in (0, 15, 30, 45)],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_period_fires_once_at_its_tick(case: Case) -> None:
    rule, start, end, expected = case
    ticks = fired(rule, start, end)
    assert [show(t) for t in ticks] == [show(t) for t in expected]
    assert ticks == expected


def test_a_five_field_tick_is_the_start_of_its_minute() -> None:
    rule = schedule("0 9 * * *", "Europe/Berlin")
    nine = berlin(2026, 6, 1, 9, 0)
    for offset in (0.0, 0.25, 1.0, 37.0, 59.75, 3600.0):
        assert rule.latest_tick(nine + offset) == nine
    assert rule.latest_tick(nine - 0.25) == berlin(2026, 5, 31, 9, 0)
    assert rule.next_tick(nine - 0.25) == nine
    assert rule.next_tick(nine) == berlin(2026, 6, 2, 9, 0)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_next_tick_is_the_next_latest_tick(case: Case) -> None:
    """What the listing shows as `next_run` is the tick that fires next."""
    rule, start, _, expected = case
    grid = [rule.latest_tick(start), *expected]
    draw = random.Random(7)
    for now in sorted(draw.uniform(start, expected[-1] - 0.001) for _ in range(300)):
        position = max(i for i, t in enumerate(grid) if t <= now)
        assert rule.latest_tick(now) == grid[position], show(now)
        assert rule.next_tick(now) == grid[position + 1], show(now)


# The plan: late ticks, new schedules, changed rules ---------------------------------------------
def test_a_process_starting_fires_only_a_recent_tick() -> None:
    rule = schedule("0 9 * * *")
    assert TickPlan(too_late_s=60).due(rule, utc(2026, 5, 4, 9, 0, 50)) == utc(2026, 5, 4, 9)
    assert TickPlan(too_late_s=60).due(rule, utc(2026, 5, 4, 9, 1, 10)) is None


def test_an_api_schedule_never_fires_a_tick_from_before_it_was_made() -> None:
    made = utc(2026, 5, 4, 9, 0, 20)
    rule = schedule("* * * * *", created_at=made)
    assert rule.source == "api"
    ticks = fired(rule, made - 0.25, made + 130)
    assert ticks == [utc(2026, 5, 4, 9, 1), utc(2026, 5, 4, 9, 2)]


def test_a_changed_rule_is_a_new_schedule_and_forget_hands_a_tick_out_again() -> None:
    plan = TickPlan(too_late_s=60)
    now = utc(2026, 5, 4, 9, 0, 10)
    assert plan.due(schedule("* * * * *"), now) == utc(2026, 5, 4, 9)
    assert plan.due(schedule("* * * * *"), now + 1) is None
    assert plan.due(schedule("* * * * * */5"), now + 1) == utc(2026, 5, 4, 9, 0, 10)
    plan.forget("s")
    assert plan.due(schedule("* * * * * */5"), now + 2) == utc(2026, 5, 4, 9, 0, 10)


# Refused: what cannot run, or would not run the same way twice ---------------------------------
@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 0 30 2 *", "never fires: Day(s) [30] can never occur in month(s) [2]"),
        ("0 0 31 4,6 *", "never fires"),
        ("* * 30 2 * *", "never fires"),
        ("R * * * *", "`R` (random) and `H` (hashed)"),
        ("0 R * * *", "`R` (random)"),
        ("H 9 * * *", "`H` (hashed)"),
        ("H(0-29) * * * *", "`H` (hashed)"),
        ("0 9 * * h/2", "`H` (hashed)"),
        ("0 1,r * * *", "`R` (random)"),
        ("* * * *", "has 4 fields"),
        ("0 0 1 1 * 0 2030", "has 7 fields"),
        ("61 * * * *", "is not valid"),
    ],
)
def test_a_cron_that_cannot_run_is_refused_naming_the_field(cron: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        schedule(cron)
    (error,) = caught.value.errors()
    assert error["loc"] == ("cron",)
    assert words in error["msg"]
    assert isinstance(error["ctx"]["error"], ScheduleError)


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 29 2 *",
        "0 0 30 2 1",
        "0 9 * * THU",
        "0 9 1 MAR *",
        "0 0 L * *",
        "@hourly",
        "0 9 * * 1#2",
    ],
    ids=["leap-day", "feb-30-or-mondays", "thursday", "march", "last-day", "alias", "nth"],
)
def test_rare_but_possible_crons_are_accepted(cron: str) -> None:
    rule = schedule(cron, "Europe/Berlin")
    now = utc(2026, 11, 29, 0, 0, 30)
    assert rule.latest_tick(now) < now < rule.next_tick(now)


def test_an_unknown_zone_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        schedule("0 9 * * *", "Mars/Olympus")
    assert [e["loc"] for e in caught.value.errors()] == [("timezone",)]
