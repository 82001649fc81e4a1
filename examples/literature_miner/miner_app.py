"""The literature miner's app: taskjet's own API (whose `/sse/{client_id}` and
`WS /ws/{client_id}` carry the task's live events) plus a page to start a search and follow it.

    uvicorn --factory miner_app:create
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from miner_tasks import mine_literature
from pydantic import BaseModel, Field

from src.api.app import create_app

PAGE = Path(__file__).with_name("page.html")

router = APIRouter(prefix="/miner")


class Search(BaseModel):
    query: str = Field(min_length=1, max_length=200)
    client_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    papers: int = Field(default=5, ge=1, le=50)
    pause_s: float = Field(default=0.5, ge=0, le=10)


@router.get("")
async def page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


@router.post("/mine", status_code=202)
async def mine(search: Search) -> dict[str, str]:
    """Start mining; its events go to the client's live stream."""
    handle = (
        await mine_literature.kicker()
        .with_labels(client_id=search.client_id)
        .kiq(search.query, search.papers, search.pause_s)
    )
    return {"task_id": handle.task_id}


def create() -> FastAPI:
    app = create_app()
    app.include_router(router)
    return app
