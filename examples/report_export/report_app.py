"""The report export's HTTP face: a FastAPI router to start an export and follow it.

`POST /export/{format}` starts `export_report`; `GET /export/status/{task_id}` gives its state,
progress and, once it succeeded, the link to download the file from taskjet's API."""

from __future__ import annotations

import os

from fastapi import APIRouter, FastAPI, HTTPException
from report_tasks import FORMATS, export_report

from src.tasks.broker import broker
from src.tasks.lifespan import lifespan

API_URL = os.environ.get("REPORT_TASKJET_URL", "http://127.0.0.1:8000")

router = APIRouter(prefix="/export")


@router.post("/{fmt}", status_code=202)
async def start_export(fmt: str, rows: int = 60) -> dict[str, str]:
    if fmt not in FORMATS:
        raise HTTPException(422, f"format must be one of {sorted(FORMATS)}")
    handle = await export_report.kiq(fmt, rows)
    return {"task_id": handle.task_id, "status_url": f"/export/status/{handle.task_id}"}


@router.get("/status/{task_id}")
async def export_status(task_id: str) -> dict[str, object]:
    record = await broker.records.get(task_id)
    if record is None or record.task_name != export_report.task_name:
        raise HTTPException(404, "no such export")
    answer: dict[str, object] = {
        "task_id": task_id,
        "state": record.state,
        "progress": record.progress.model_dump() if record.progress else None,
        "download_url": None,
    }
    if record.state == "SUCCESS" and record.args:
        name = f"report.{record.args[0]}"
        answer["download_url"] = f"{API_URL}/api/v1/tasks/{task_id}/artifacts/{name}"
    return answer


app = FastAPI(title="Report export", lifespan=lifespan)
app.include_router(router)
