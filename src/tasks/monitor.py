"""Queue depths, task counts and workers, read from JetStream and Redis (no key scans)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field

from src.tasks.priority import LANES
from src.tasks.states import TaskState
from src.tasks.workers import WorkerInfo

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker


class QueueDepth(BaseModel):
    messages: int = Field(description="Queued plus running.")
    lanes: dict[str, int] = Field(description="Messages per priority lane: high, normal, low.")
    pending: int | None = Field(default=None, description="Not yet delivered to a worker.")
    in_flight: int | None = Field(default=None, description="Delivered, not yet acknowledged.")
    waiting_pulls: int | None = Field(default=None, description="Idle fetches of workers.")
    consumed: bool = Field(description="Some worker consumes this queue.")


class QueueStatus(BaseModel):
    queues: dict[str, int] = Field(description="`primary`, `retry`, `scheduled`, `dlq` depths.")
    states: dict[str, int]
    named_queues: dict[str, QueueDepth]
    workers: list[WorkerInfo]


async def queue_status(broker: JetStreamBroker) -> QueueStatus:
    layout = broker.layout
    info, delayed, counts, dlq, workers = await asyncio.gather(
        broker.js.stream_info(layout.stream, subjects_filter=layout.task_subjects),
        broker.js.stream_info(layout.schedules_stream, subjects_filter=layout.delayed_subjects),
        broker.records.counts(),
        broker.dlq.count(),
        broker.workers.alive(),
    )
    prefix = layout.task_subject("")
    depth_of: dict[str, dict[str, int]] = {}
    for subject, count in (info.state.subjects or {}).items():
        queue, _, lane = subject[len(prefix) :].partition(".")
        depth_of.setdefault(queue, {})[lane or "normal"] = count
    consumed = {q for w in workers for q in w.queues}
    named: dict[str, QueueDepth] = {}
    for queue in sorted(set(depth_of) | consumed | {layout.default_queue}):
        lanes = {lane: depth_of.get(queue, {}).get(lane, 0) for lane in LANES}
        depth = QueueDepth(messages=sum(lanes.values()), lanes=lanes, consumed=queue in consumed)
        for lane in LANES:
            try:
                consumer = await broker.js.consumer_info(
                    layout.stream, layout.consumer(queue, lane)
                )
            except NotFoundError:
                continue
            depth.pending = (depth.pending or 0) + consumer.num_pending
            depth.in_flight = (depth.in_flight or 0) + consumer.num_ack_pending
            depth.waiting_pulls = (depth.waiting_pulls or 0) + consumer.num_waiting
        named[queue] = depth
    return QueueStatus(
        queues={
            "primary": sum(d.messages for d in named.values()),
            "retry": counts[TaskState.RETRYING],
            "scheduled": sum((delayed.state.subjects or {}).values()),
            "dlq": dlq,
        },
        states={state.value: n for state, n in counts.items()},
        named_queues=named,
        workers=workers,
    )
