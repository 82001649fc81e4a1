"""Queue depths, task counts, live workers, and the dead-letter queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from src.api.auth import ReadCaller, require
from src.api.deps import BrokerDep
from src.api.errors import UnprocessableError
from src.api.schemas import (
    NAME_PATTERN,
    DeadLetters,
    Purged,
    QueueStatus,
    Requeued,
    RequeueRequest,
    RequeueSkipped,
)
from src.api.views import dead_letter_view
from src.engine.core.priority import Lane
from src.engine.operations.queues import PurgeResult
from src.engine.state.dead_letters import DeadLetter

router = APIRouter(prefix="/api/v1/queues", tags=["queues"])

QueueName = Annotated[str, Path(pattern=NAME_PATTERN, description="A queue name.")]


@router.get("/status", dependencies=[require("read")])
async def status(broker: BrokerDep) -> QueueStatus:
    """Depths read from JetStream, task counts per state, and the workers reporting."""
    return await broker.monitor.status()


@router.get("/dlq")
async def list_dead_letters(
    broker: BrokerDep,
    caller: ReadCaller,
    task_name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadLetters:
    """Oldest first: why each task was given up on, with its arguments (secrets redacted) and,
    for admin keys, its traceback. Entries that are not dead letters are left out."""
    entries = await broker.dlq.entries(task_name=task_name, limit=limit)
    items = [dead_letter_view(entry, caller, broker.settings) for entry in entries]
    return DeadLetters(items=items, total=await broker.dlq.count())


@router.post("/dlq/requeue", dependencies=[require("admin")])
async def requeue_dead_letters(body: RequeueRequest, broker: BrokerDep) -> Requeued:
    """Run dead tasks again: by id, by task name, or all (`{"all": true}`). Entries that cannot
    be run as stored are left in place and listed under `skipped`, with the reason."""
    if not (body.task_ids or body.task_name or body.all):
        raise UnprocessableError(
            "say which entries: `task_ids`, `task_name`, or `all: true`",
            [{"loc": ["body"], "msg": "nothing selected"}],
        )
    skipped: list[RequeueSkipped] = []

    def skip(entry: DeadLetter, reason: str) -> None:
        skipped.append(RequeueSkipped(task_id=entry.task_id, reason=reason))

    requeued = await broker.dlq.requeue(
        task_ids=body.task_ids, task_name=body.task_name, on_skip=skip
    )
    return Requeued(requeued=requeued, skipped=skipped)


@router.delete("/dlq", dependencies=[require("admin")])
async def purge_dead_letters(
    broker: BrokerDep,
    task_name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Purged:
    """Delete dead letters for good: all, or those of `task_name`."""
    return Purged(purged=await broker.dlq.purge(task_name=task_name))


class QueuePaused(BaseModel):
    queue: str
    paused: bool


@router.post("/{queue}/pause", dependencies=[require("admin")])
async def pause_queue(queue: QueueName, broker: BrokerDep) -> QueuePaused:
    """Every worker stops fetching from the queue within a second (running tasks go on);
    its tasks stay queued until it is resumed. Survives restarts."""
    await broker.queues.pause(queue)
    return QueuePaused(queue=queue, paused=True)


@router.post("/{queue}/resume", dependencies=[require("admin")])
async def resume_queue(queue: QueueName, broker: BrokerDep) -> QueuePaused:
    await broker.queues.resume(queue)
    return QueuePaused(queue=queue, paused=False)


@router.delete("/{queue}", dependencies=[require("admin")])
async def purge_queue(
    queue: QueueName,
    broker: BrokerDep,
    lane: Annotated[Lane | None, Query(description="Only this priority lane.")] = None,
) -> PurgeResult:
    """Drop the queue's queued tasks (recorded CANCELLED, their waiters told); running tasks
    are left alone. Delayed tasks not yet due are not touched."""
    return await broker.queues.purge(queue, lane)
