"""`POST /process`: the shortest path from an HTTP request to a queued task."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from src.api.deps import SubmitCaller
from src.api.links import absolute, task_path
from src.api.schemas import ProcessRequest, TaskAccepted
from src.tasks.example import example_task

router = APIRouter(tags=["example"])


@router.post("/process", status_code=status.HTTP_202_ACCEPTED)
async def process(body: ProcessRequest, request: Request, _: SubmitCaller) -> TaskAccepted:
    """Queue `example_task` with the posted data; poll `status_url` for its result."""
    task = await example_task.kiq(body.data)
    return TaskAccepted(
        task_id=task.task_id,
        status_url=absolute(request, task_path(request, task.task_id)),
    )
