"""`POST /process`: the shortest path from an HTTP request to a queued task."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from src.api.auth import require
from src.api.schemas import ProcessRequest, TaskAccepted
from src.tasks.example import example_task

router = APIRouter(tags=["example"])


@router.post("/process", status_code=status.HTTP_202_ACCEPTED, dependencies=[require("submit")])
async def process(body: ProcessRequest, request: Request) -> TaskAccepted:
    """Queue `example_task` with the posted data; poll `status_url` for its result."""
    task = await example_task.kiq(body.data)
    return TaskAccepted(
        task_id=task.task_id,
        status_url=str(request.url_for("get_task", task_id=task.task_id)),
    )
