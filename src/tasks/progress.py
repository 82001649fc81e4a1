"""Progress reports from inside a running task.

    from src.tasks.progress import Progress

    @register_task()
    async def build_report(report_id: int, progress: Progress = TaskiqDepends()) -> str:
        for page in range(10):
            ...
            await progress.update(current=page + 1, total=10, stage="rendering")

Each update lands on the task's record (state PROGRESS) and is published as a `processing`
event. Updates of many tasks at the same moment share one Redis round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from taskiq import Context, TaskiqDepends

from src.tasks.events import TaskEvent
from src.tasks.records import Progress as ProgressData
from src.tasks.records import Transition
from src.tasks.states import TaskState

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker


class Progress:
    """A task dependency: `progress: Progress = TaskiqDepends()`."""

    def __init__(self, context: Context = TaskiqDepends()) -> None:
        self._broker = cast("JetStreamBroker", context.broker)
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
        before = await self._broker.records.submit(
            Transition(
                task.task_id,
                task.task_name,
                TaskState.PROGRESS,
                "advance",
                {"progress": data.model_dump_json()},
            )
        )
        self.last = data
        if before is not None and before.terminal:
            return  # cancelled meanwhile: the record keeps saying so
        await self._broker.events.publish(
            TaskEvent.of(task.task_id, TaskState.PROGRESS, progress=data),
            task.labels.get("client_id"),
        )
