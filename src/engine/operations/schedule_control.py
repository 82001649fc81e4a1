"""Steering periodic schedules by id: pause, resume, run once now, delete (API and CLI alike).

Schedules declared in code are read-only here (`ScheduleReadOnlyError`): they change with the
code. A stored definition that cannot run raises `StoredScheduleError` from `find` but can
still be deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from src.engine.core.errors import ScheduleError, ScheduleNotFoundError, ScheduleReadOnlyError
from src.engine.scheduling.schedules import Schedule, ScheduleState, ScheduleStore, Ticker


class ScheduleControl:
    def __init__(self, store: ScheduleStore, ticker: Callable[[], Ticker]) -> None:
        self._store = store
        self._ticker = ticker

    async def find(self, schedule_id: str) -> Schedule:
        schedule = await self._store.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    def declared(self, schedule_id: str) -> Schedule | None:
        return next((s for s in self._store.declared() if s.id == schedule_id), None)

    async def editable(self, schedule_id: str) -> Schedule:
        """The schedule, if it may be changed here."""
        schedule = await self.find(schedule_id)
        _refuse_code(schedule)
        return schedule

    async def set_paused(self, schedule_id: str, paused: bool) -> ScheduleState:
        schedule = await self.editable(schedule_id)
        updated = schedule.model_copy(update={"paused": paused})
        await self._store.save(updated)
        return await self._store.state(updated)

    async def run_now(self, schedule_id: str) -> str:
        """One run of the schedule's task now, outside its cadence (paused or not), recorded as
        its last run; the task's id. `ScheduleError` if it cannot run."""
        return await self._ticker().fire(await self.find(schedule_id), time.time())

    async def delete(self, schedule_id: str) -> None:
        """Also removes a stored definition that cannot run."""
        declared = self.declared(schedule_id)
        if declared is not None:
            _refuse_code(declared)
        if not await self._store.delete(schedule_id):
            raise ScheduleNotFoundError(schedule_id)


def _refuse_code(schedule: Schedule) -> None:
    if schedule.source == "code":
        raise ScheduleReadOnlyError(schedule.id, schedule.task)


__all__ = ["ScheduleControl", "ScheduleError"]
