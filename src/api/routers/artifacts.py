"""Files a task produced: list them, and stream one."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from src.api.auth import ReadCaller
from src.api.deps import BrokerDep
from src.engine.state.artifacts import Artifact

router = APIRouter(prefix="/api/v1/tasks", tags=["artifacts"])


@router.get("/{task_id}/artifacts")
async def list_artifacts(task_id: str, broker: BrokerDep, _: ReadCaller) -> list[Artifact]:
    """The task's files, oldest first (an empty list for a task with none, or expired)."""
    return await broker.artifacts.list(task_id)


@router.get(
    "/{task_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
async def download_artifact(
    task_id: str, name: str, broker: BrokerDep, _: ReadCaller
) -> StreamingResponse:
    """The file, streamed in chunks as JetStream holds it."""
    artifact = await broker.artifacts.get(task_id, name)
    return StreamingResponse(
        broker.artifacts.chunks(task_id, name),
        media_type=artifact.content_type,
        headers={
            "Content-Length": str(artifact.size),
            "Content-Disposition": f'attachment; filename="{artifact.name}"',
            # A task chose the content type: never let a browser run it as a page of this
            # origin (the dashboard's), whatever it claims to be.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )
