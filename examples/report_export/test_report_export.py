"""The report export's own tests: exports run on one real worker, the files are read back from
the artifact store, and the PDF is opened with a PDF reader."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pypdf import PdfReader
from report_app import router

from src.engine.broker import JetStreamBroker
from src.testing import StartWorker

pytestmark = pytest.mark.taskjet_settings(worker_modules="report_tasks")


@pytest_asyncio.fixture
async def client(
    taskjet_broker: JetStreamBroker, taskjet_worker: StartWorker
) -> AsyncIterator[httpx.AsyncClient]:
    await taskjet_worker()
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://report") as http:
        yield http


async def finished(client: httpx.AsyncClient, status_url: str) -> dict[str, object]:
    """The status once the export has ended."""
    for _ in range(600):
        status: dict[str, object] = (await client.get(status_url)).json()
        if status["state"] in {"SUCCESS", "FAILURE", "DEAD"}:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the export did not end: {status}")


async def export(
    client: httpx.AsyncClient, broker: JetStreamBroker, fmt: str, rows: int
) -> tuple[dict[str, object], bytes]:
    started = await client.post(f"/export/{fmt}", params={"rows": rows})
    assert started.status_code == 202
    status = await finished(client, started.json()["status_url"])
    task_id = started.json()["task_id"]
    body = b"".join([chunk async for chunk in broker.artifacts.chunks(task_id, f"report.{fmt}")])
    return status, body


async def test_a_pdf_export_has_its_pages_and_text(
    client: httpx.AsyncClient, taskjet_broker: JetStreamBroker
) -> None:
    status, body = await export(client, taskjet_broker, "pdf", 60)
    assert status["state"] == "SUCCESS"
    assert status["progress"] == {
        "current": 3.0,
        "total": 3.0,
        "message": "ready to download",
        "stage": "done",
    }
    assert str(status["download_url"]).endswith(
        f"/api/v1/tasks/{status['task_id']}/artifacts/report.pdf"
    )
    reader = PdfReader(io.BytesIO(body))
    assert len(reader.pages) == 3  # 60 rows, 25 a page
    first, last = reader.pages[0].extract_text(), reader.pages[2].extract_text()
    assert "Sales report (page 1)" in first
    assert "row 0" in first
    assert "row 59" in last


async def test_csv_and_json_exports_hold_every_row(
    client: httpx.AsyncClient, taskjet_broker: JetStreamBroker
) -> None:
    _, csv_body = await export(client, taskjet_broker, "csv", 5)
    assert csv_body.decode().splitlines()[0] == "row,region,amount"
    assert len(csv_body.decode().splitlines()) == 6
    _, json_body = await export(client, taskjet_broker, "json", 5)
    assert orjson.loads(json_body)[4] == {"row": 4, "region": "region 0", "amount": 40}


async def test_an_unknown_format_or_task_is_refused(client: httpx.AsyncClient) -> None:
    assert (await client.post("/export/docx")).status_code == 422
    assert (await client.get("/export/status/no-such-task")).status_code == 404
