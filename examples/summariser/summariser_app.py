"""The summariser's HTTP face: start a summary, follow it, see and reset the model's breaker.

`POST /summarise` starts `summarise`; `GET /summarise/{task_id}` gives its state and summary;
`GET /model/breaker` the breaker's shared state; `POST /model/breaker/reset` closes it (once
the model is back, without waiting for the open period to end)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel
from summariser_tasks import BREAKER, summarise

from src.tasks.broker import broker
from src.tasks.lifespan import lifespan

router = APIRouter()


class Text(BaseModel):
    text: str


@router.post("/summarise", status_code=202)
async def start_summary(body: Text) -> dict[str, str]:
    handle = await summarise.kiq(body.text)
    return {"task_id": handle.task_id, "status_url": f"/summarise/{handle.task_id}"}


@router.get("/summarise/{task_id}")
async def summary_status(task_id: str) -> dict[str, object]:
    record = await broker.records.get(task_id)
    if record is None or record.task_name != summarise.task_name:
        raise HTTPException(404, "no such summary")
    summary = None
    if record.state == "SUCCESS":
        summary = (await broker.result_backend.get_result(task_id)).return_value
    return {"task_id": task_id, "state": record.state, "summary": summary}


@router.get("/model/breaker")
async def breaker_state() -> dict[str, object]:
    for state in await broker.breakers.states():
        if state.name == BREAKER:
            return state.as_dict()
    return {"name": BREAKER, "state": "closed", "failures": 0}


@router.post("/model/breaker/reset")
async def reset_breaker() -> dict[str, list[str]]:
    return {"reset": await broker.breakers.reset(BREAKER)}


app = FastAPI(title="Summariser", lifespan=lifespan)
app.include_router(router)
