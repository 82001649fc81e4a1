"""Queue depths, task counts and workers, read from JetStream and Redis (no key scans)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field

from src.engine.core.labels import QUEUE_NAME
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES, Lane
from src.engine.core.states import TaskState
from src.engine.state.dead_letters import DeadLetterQueue
from src.engine.state.queue_pauses import QueuePauses
from src.engine.state.record import TaskRecord
from src.engine.state.records import TaskRecords
from src.engine.worker.registry import WorkerInfo, WorkerRegistry

logger = logging.getLogger("taskjet.monitor")


class QueueDepth(BaseModel):
    messages: int = Field(description="Queued plus running.")
    lanes: dict[str, int] = Field(description="Messages per priority lane: high, normal, low.")
    pending: int | None = Field(default=None, description="Not yet delivered to a worker.")
    in_flight: int | None = Field(default=None, description="Delivered, not yet acknowledged.")
    waiting_pulls: int | None = Field(default=None, description="Idle fetches of workers.")
    consumed: bool = Field(description="Some worker consumes this queue.")
    paused: bool = Field(default=False, description="No worker fetches from it until resumed.")


class QueueStatus(BaseModel):
    queues: dict[str, int] = Field(description="`primary`, `retry`, `scheduled`, `dlq` depths.")
    retry_ratio: float = Field(
        description="Retrying tasks over all tasks waiting to start (retrying plus never "
        "delivered): near 1 in a retry storm, while workers still give new tasks their share."
    )
    states: dict[str, int]
    named_queues: dict[str, QueueDepth]
    workers: list[WorkerInfo]


class QueueMonitor:
    """Reads the state of every queue; used by the API, the CLI and the dashboard."""

    def __init__(
        self,
        *,
        js: Callable[[], JetStreamContext],
        layout: Callable[[], Layout],
        records: TaskRecords,
        dlq: DeadLetterQueue,
        workers: WorkerRegistry,
        pauses: QueuePauses,
    ) -> None:
        self._js = js
        self._layout = layout
        self._records = records
        self._dlq = dlq
        self._workers = workers
        self._pauses = pauses

    async def status(self) -> QueueStatus:
        js = self._js()
        layout = self._layout()
        info, delayed, counts, dlq, workers, paused = await asyncio.gather(
            js.stream_info(layout.stream, subjects_filter=layout.task_subjects),
            js.stream_info(layout.schedules_stream, subjects_filter=layout.delayed_subjects),
            self._records.counts(),
            self._dlq.count(),
            self._workers.alive(),
            self._pauses.paused(),
        )
        prefix = layout.task_subject("")
        depth_of: dict[str, dict[str, int]] = {}
        for subject, count in (info.state.subjects or {}).items():
            parsed = _queue_and_lane(subject[len(prefix) :])
            if parsed is None:
                # Published straight to NATS by something else: no worker will take it.
                logger.warning("%d message(s) on %r, which names no queue and lane", count, subject)
                continue
            queue, lane = parsed
            depth_of.setdefault(queue, {})[lane] = count
        consumed = {q for w in workers for q in w.queues}
        queues = sorted(set(depth_of) | consumed | paused | {layout.default_queue})
        consumers = await asyncio.gather(
            *(
                _consumer(js, layout.stream, layout.consumer(q, lane))
                for q in queues
                for lane in LANES
            )
        )
        named: dict[str, QueueDepth] = {}
        for index, queue in enumerate(queues):
            lanes = {lane: depth_of.get(queue, {}).get(lane, 0) for lane in LANES}
            depth = QueueDepth(
                messages=sum(lanes.values()),
                lanes=lanes,
                consumed=queue in consumed,
                paused=queue in paused,
            )
            for consumer in consumers[index * len(LANES) : (index + 1) * len(LANES)]:
                if consumer is None:
                    continue
                depth.pending = (depth.pending or 0) + consumer.num_pending
                depth.in_flight = (depth.in_flight or 0) + consumer.num_ack_pending
                depth.waiting_pulls = (depth.waiting_pulls or 0) + consumer.num_waiting
            named[queue] = depth
        retrying = counts[TaskState.RETRYING]
        waiting = retrying + sum(d.pending or 0 for d in named.values())
        return QueueStatus(
            retry_ratio=round(retrying / waiting, 4) if waiting else 0.0,
            queues={
                "primary": sum(d.messages for d in named.values()),
                "retry": retrying,
                "scheduled": sum((delayed.state.subjects or {}).values()),
                "dlq": dlq,
            },
            states={state.value: n for state, n in counts.items()},
            named_queues=named,
            workers=workers,
        )

    async def active(self, limit: int = 1000) -> list[TaskRecord]:
        """Running tasks (STARTED records), longest running first."""
        ids = await self._records.ids_in([TaskState.STARTED], limit=limit)
        found = [r for r in await self._records.get_many(ids) if r is not None]
        return sorted(found, key=lambda r: (r.started_at or 0.0, r.task_id))

    async def delayed(self, limit: int = 1000) -> list[TaskRecord]:
        """Tasks held until a due time (one JetStream message schedule each), soonest first."""
        layout = self._layout()
        info = await self._js().stream_info(
            layout.schedules_stream, subjects_filter=layout.delayed_subjects
        )
        prefix = layout.delayed_subject("")
        ids = [subject[len(prefix) :] for subject in (info.state.subjects or {})][:limit]
        found = [r for r in await self._records.get_many(ids) if r is not None]
        return sorted(found, key=lambda r: (r.due_at or 0.0, r.task_id))


async def _consumer(js: JetStreamContext, stream: str, name: str) -> Any:
    """A consumer's counts; None for one not created yet (a lane no task used)."""
    try:
        return await js.consumer_info(stream, name)
    except NotFoundError:
        return None


def _queue_and_lane(rest: str) -> tuple[str, Lane] | None:
    """`<queue>` or `<queue>.high` / `<queue>.low` (the part after `tasks.`), else None."""
    queue, dot, lane = rest.partition(".")
    if not QUEUE_NAME.fullmatch(queue):
        return None
    if not dot:
        return queue, "normal"
    if lane == "high":
        return queue, "high"
    return (queue, "low") if lane == "low" else None
