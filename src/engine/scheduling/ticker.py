"""The ticker every worker and server process runs: fires each due tick of every schedule.

When a tick is due, every process dispatches the task under an id derived from the schedule
and the tick time, and JetStream's de-duplication (`Nats-Msg-Id`) keeps exactly one. Which
tick is due is decided by `TickPlan`, which does no I/O so a fake clock can drive it.

One schedule never stops the others: a definition Redis holds that cannot run is skipped and
logged once, and a schedule whose tick fails is logged once per distinct error and tried again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskiq.decor import AsyncTaskiqDecoratedTask

from src.engine.core.errors import ScheduleError
from src.engine.scheduling.specs import Schedule
from src.engine.scheduling.store import ScheduleStore

FindTask = Callable[[str], AsyncTaskiqDecoratedTask[Any, Any] | None]

logger = logging.getLogger("taskjet.schedules")

TICK_NAMESPACE = uuid.UUID("0b6f4a8e-58f4-4f0e-9d1e-1f6b7c3a9e21")
_STORE_REFRESH_S = 2.0


def tick_task_id(schedule_id: str, tick: float) -> str:
    """The same for every replica that fires this tick: the duplicates are dropped."""
    return uuid.uuid5(TICK_NAMESPACE, f"{schedule_id}@{tick:.3f}").hex


@dataclass
class _Seen:
    rule: tuple[str | None, float | None, str]
    last: float  # the latest tick handed out (or passed over as too late)
    check_at: float  # no later tick is due before this


class TickPlan:
    """Hands out each tick of each schedule once, as the clock passes it.

    Between ticks a schedule costs one comparison: its next tick is worked out once, when the
    last one is handed out. A tick more than `too_late_s` old is passed over (its
    de-duplication may have expired on the server), so a process starting up fires only a
    tick that just happened; a tick from before an API schedule was made is passed over too.
    """

    def __init__(self, too_late_s: float) -> None:
        self._too_late_s = too_late_s
        self._seen: dict[str, _Seen] = {}

    def due(self, schedule: Schedule, now: float) -> float | None:
        """The tick of `schedule` to fire at `now`, if one is due and was not handed out."""
        rule = (schedule.cron, schedule.interval, schedule.timezone)
        seen = self._seen.get(schedule.id)
        if seen is not None and seen.rule != rule:
            seen = None  # the same id with another rule: a new schedule
        if seen is not None and now < seen.check_at:
            return None
        tick = schedule.latest_tick(now)
        check_at = schedule.next_tick(now)
        if seen is not None and tick <= seen.last:
            seen.check_at = check_at
            return None
        self._seen[schedule.id] = _Seen(rule, tick, check_at)
        if now - tick > self._too_late_s:
            return None
        # Code schedules are made anew by each process at startup: they have no such time.
        if schedule.source == "api" and tick < schedule.created_at:
            return None
        return tick

    def forget(self, schedule_id: str) -> None:
        """Its tick was not sent: hand it out again on the next check (if still in time)."""
        self._seen.pop(schedule_id, None)


class Ticker:
    """Fires due ticks of every schedule; runs in every worker and server process."""

    def __init__(
        self,
        store: ScheduleStore,
        find_task: FindTask,
        declared: list[Schedule],
        duplicate_window_s: float,
        interval_s: float,
    ) -> None:
        self._store = store
        self._find_task = find_task
        self._plan = TickPlan(too_late_s=min(duplicate_window_s / 2, 60.0))
        self._interval_s = interval_s
        self._stored: list[Schedule] = []
        self._stored_at = -math.inf
        self._skipped: set[str] = set()  # invalid stored definitions, already logged
        self._failing: dict[str, str] = {}  # schedule id → the error last logged for it
        # Declared in code: fixed for the life of the process, so read once.
        self._declared = declared

    async def run(self) -> None:
        interval = self._interval_s
        while True:
            try:
                await self.tick(time.time())
            except Exception as exc:  # a bug, not a bad schedule: those are handled one by one
                logger.exception("schedules not checked: %s", exc)
            await asyncio.sleep(interval)

    async def tick(self, now: float) -> None:
        if now - self._stored_at > _STORE_REFRESH_S:
            await self._refresh(now)
        for schedule in self._declared + self._stored:
            if schedule.paused:
                continue
            try:
                tick = self._plan.due(schedule, now)
                if tick is not None:
                    await self.fire(schedule, tick)
            except ScheduleError as exc:  # will not get better in this process: tick passed
                self._failed(schedule, exc)
            except Exception as exc:  # NATS or Redis away: the next check tries again
                self._plan.forget(schedule.id)
                self._failed(schedule, exc)
            else:
                if tick is not None and self._failing.pop(schedule.id, None) is not None:
                    logger.info("schedule %s fires again", schedule.id)

    async def fire(self, schedule: Schedule, tick: float) -> str:
        task = self._find_task(schedule.task)
        if task is None:
            raise ScheduleError(f"names unknown task {schedule.task!r}")
        task_id = tick_task_id(schedule.id, tick)
        kicker = (
            task.kicker()
            .with_task_id(task_id)
            .with_labels(schedule_id=schedule.id, scheduled_for=tick)
        )
        await kicker.kiq(*schedule.args, **schedule.kwargs)
        await self._store.record_run(schedule.id, tick, task_id)
        return task_id

    async def _refresh(self, now: float) -> None:
        """Re-read the stored schedules; on failure keep the last ones (code ones still run)."""
        self._stored_at = now
        try:
            stored = await self._store.stored()
        except Exception as exc:
            self._log_once("stored schedules", f"not read: {exc}")
            return
        self._failing.pop("stored schedules", None)
        self._stored = stored.schedules
        skipped = {f"{bad.id}: {bad.describe()}" for bad in stored.invalid}
        for line in sorted(skipped - self._skipped):
            logger.error("stored schedule skipped, it cannot run (delete it): %s", line)
        self._skipped = skipped

    def _failed(self, schedule: Schedule, exc: Exception) -> None:
        self._log_once(schedule.id, f"{type(exc).__name__}: {exc}")

    def _log_once(self, what: str, error: str) -> None:
        if self._failing.get(what) != error:
            self._failing[what] = error
            logger.warning("schedule %s: %s", what, error)
