"""Progress reports from inside a running task.

    from src.tasks.broker import Progress

    @register_task()
    async def build_report(report_id: int, progress: Progress = TaskiqDepends()) -> str:
        for page in range(10):
            ...
            await progress.update(current=page + 1, total=10, stage="rendering")

Each update lands on the task's record (state PROGRESS) and is published as a `processing`
event. Updates of many tasks at the same moment share one Redis round trip.
"""

from __future__ import annotations

from typing import Protocol, cast

from taskiq import Context, TaskiqDepends

from src.engine.core.labels import dispatch_of
from src.engine.core.states import TaskState
from src.engine.state.events import EventBus, TaskEvent
from src.engine.state.record import Progress as ProgressData
from src.engine.state.transitions import Transition, TransitionWriter
from src.engine.worker.delivery import current_delivery


class _Reporting(Protocol):
    """What progress needs of the broker running the task."""

    @property
    def writes(self) -> TransitionWriter: ...
    @property
    def events(self) -> EventBus: ...


class Progress:
    """A task dependency: `progress: Progress = TaskiqDepends()`."""

    def __init__(self, context: Context = TaskiqDepends()) -> None:
        self._broker = cast("_Reporting", context.broker)
        self._message = context.message
        self.last: ProgressData | None = None

    async def update(
        self,
        current: float | None = None,
        total: float | None = None,
        message: str | None = None,
        stage: str | None = None,
    ) -> None:
        data = ProgressData(current=current, total=total, message=message, stage=stage)
        task = self._message
        delivery = current_delivery.get()
        written = await self._broker.writes.submit(
            Transition(
                task.task_id,
                task.task_name,
                TaskState.PROGRESS,
                "advance",
                {"progress": data.model_dump_json()},
                dispatch=dispatch_of(task.labels),
                attempt=delivery.attempt if delivery is not None else 0,
            )
        )
        self.last = data
        if not written.applied:
            return  # cancelled or finished meanwhile: the record keeps saying so
        await self._broker.events.publish(
            TaskEvent.of(task.task_id, TaskState.PROGRESS, progress=data),
            task.labels.get("client_id"),
        )
