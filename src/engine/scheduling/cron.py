"""Cron expressions read at their own resolution, in a time zone, across clock changes.

A five-field expression names minutes: its ticks are the starts of the matching minutes
(09:00:00, never 09:00:37). Six fields, seconds last, name seconds. Ticks are found with
croniter's `get_prev`/`get_next` (its `match` is true for every second of a matching minute,
which would fire a five-field schedule sixty times).

Clock changes, in the schedule's zone:
- A local time the clocks skip (spring forward) fires once, when the clocks jump: `30 2 * * *`
  in Europe/Berlin runs at 03:00 CEST on the last Sunday of March (croniter's choice, kept).
- A local time that happens twice (fall back) fires once, the first time (summer time), if
  the expression names its hours (`30 2 * * *`, `*/15 2 * * *`). An expression for every hour
  (`0 * * * *`, `* * * * *`) keeps its real-time rhythm and fires in both passes of the
  repeated hour: those are distinct hours.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from src.engine.core.errors import ScheduleError

# `H` (hashed) and `R` (random) values, alone or with a range or step: croniter draws `R`
# again for every iterator, so the ticks of a schedule would move on every check.
_DRAWN = re.compile(r"^[hr](\(|/|$)", re.IGNORECASE)
_STRICT_PREFIX = re.compile(r"^\[.*\] is not acceptable\.\s*")
# Ticks are whole seconds: a start this far before an instant reads as the second before it.
_JUST_BEFORE_S = 0.001


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def check_expression(expression: str) -> None:
    """Refuse what cannot run the same way on every replica and every check."""
    problem = _problem(expression)
    if problem is not None:
        raise ScheduleError(problem)


@functools.lru_cache(maxsize=1024)
def _problem(expression: str) -> str | None:
    """Why `expression` cannot run, if it cannot; remembered, as stored schedules are read
    again every few seconds by every process."""
    for term in (t for f in expression.split() for t in f.split(",")):
        if _DRAWN.match(term):
            return (
                f"cron {expression!r}: `R` (random) and `H` (hashed) values are not supported, "
                "they would be drawn again on every check; write the value (e.g. `17 * * * *`)"
            )
    fields = expression.split()
    if len(fields) not in (5, 6) and not (len(fields) == 1 and fields[0].startswith("@")):
        return (
            f"cron {expression!r} has {len(fields)} fields: give five (minute hour day month "
            "weekday) or six with seconds last"
        )
    try:
        now = datetime.now(ZoneInfo("UTC"))
        it = croniter(expression, now)
        it.get_next(float, start_time=now)
        it.get_prev(float, start_time=now)
    except CroniterBadDateError:
        return f"cron {expression!r} never fires: {_why_never(expression)}"
    except (ValueError, TypeError) as exc:  # croniter's refusals (CroniterError is a ValueError)
        return f"cron {expression!r} is not valid: {exc}"
    return None


def _why_never(expression: str) -> str:
    try:
        croniter.expand(expression, strict=True)
    except CroniterError as exc:
        return _STRICT_PREFIX.sub("", str(exc))
    return "no date matches it"


@dataclass(frozen=True)
class CronRule:
    """A checked cron expression in a zone: the tick at or before an instant, and after it."""

    expression: str
    tz: ZoneInfo
    every_hour: bool
    _it: croniter = field(compare=False, repr=False)

    def latest(self, now: float) -> float:
        """The last tick at or before `now` (Unix time)."""
        tick = self._prev(math.floor(now) + 1)
        if not self.every_hour and _second_pass(tick):
            tick = self._prev(_fall_back_at(tick) - _JUST_BEFORE_S)
        return tick.timestamp()

    def following(self, now: float) -> float:
        """The first tick after `now` (Unix time): the next value `latest` takes."""
        tick = self._next(math.floor(now))
        if not self.every_hour and _second_pass(tick):
            repeated = tick.timestamp() - tick.replace(fold=0).timestamp()
            tick = self._next(_fall_back_at(tick) + repeated - _JUST_BEFORE_S)
        return tick.timestamp()

    def _prev(self, before: float) -> datetime:
        """The last tick strictly before `before` (croniter steps back, then truncates)."""
        start = datetime.fromtimestamp(before, self.tz)
        result: datetime = self._it.get_prev(datetime, start_time=start)
        return result

    def _next(self, after: float) -> datetime:
        """The first tick in a later minute (or second, for six fields) than `after`."""
        start = datetime.fromtimestamp(after, self.tz)
        result: datetime = self._it.get_next(datetime, start_time=start)
        return result


@functools.lru_cache(maxsize=1024)
def cron_rule(expression: str, timezone: str) -> CronRule:
    """Parsed once per expression and zone (a parse costs more than finding a tick). The one
    croniter is shared: each call gives it its start and reads the tick with no await between."""
    check_expression(expression)
    tz = zone(timezone)
    expanded = croniter.expand(expression)[0]
    return CronRule(
        expression=expression,
        tz=tz,
        every_hour=expanded[1] == ["*"],
        _it=croniter(expression, datetime.now(tz)),
    )


def _second_pass(tick: datetime) -> bool:
    """A local time that happened before, an hour (or the zone's shift) earlier."""
    return tick.replace(fold=0).timestamp() < tick.timestamp()


def _fall_back_at(tick: datetime) -> int:
    """The instant the clocks went back, before the second pass that holds `tick`."""
    lo, hi = int(tick.replace(fold=0).timestamp()), int(tick.timestamp())
    after = datetime.fromtimestamp(hi, tick.tzinfo).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tick.tzinfo).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi
