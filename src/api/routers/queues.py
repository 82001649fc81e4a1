"""Queue depths, task counts, live workers, and the dead-letter queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.errors import UnprocessableError
from src.api.schemas import DeadLetters, Purged, QueueStatus, Requeued, RequeueRequest
from src.tasks.monitor import queue_status

router = APIRouter(prefix="/api/v1/queues", tags=["queues"])


@router.get("/status", dependencies=[require("read")])
async def status(broker: BrokerDep) -> QueueStatus:
    """Depths read from JetStream, task counts per state, and the workers reporting."""
    return await queue_status(broker)


@router.get("/dlq", dependencies=[require("read")])
async def list_dead_letters(
    broker: BrokerDep,
    task_name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadLetters:
    """Oldest first: why each task was given up on, with its arguments and traceback."""
    items = await broker.dlq.entries(task_name=task_name, limit=limit)
    return DeadLetters(items=items, total=await broker.dlq.count())


@router.post("/dlq/requeue", dependencies=[require("admin")])
async def requeue_dead_letters(body: RequeueRequest, broker: BrokerDep) -> Requeued:
    """Run dead tasks again: by id, by task name, or all (`{"all": true}`)."""
    if not (body.task_ids or body.task_name or body.all):
        raise UnprocessableError(
            "say which entries: `task_ids`, `task_name`, or `all: true`",
            [{"loc": ["body"], "msg": "nothing selected"}],
        )
    requeued = await broker.dlq.requeue(task_ids=body.task_ids, task_name=body.task_name)
    return Requeued(requeued=requeued)


@router.delete("/dlq", dependencies=[require("admin")])
async def purge_dead_letters(
    broker: BrokerDep,
    task_name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Purged:
    """Delete dead letters for good: all, or those of `task_name`."""
    return Purged(purged=await broker.dlq.purge(task_name=task_name))
