"""The report export's task: builds a PDF, CSV or JSON report, reporting progress, and stores it
as an artifact of the task, downloadable at `GET /api/v1/tasks/{id}/artifacts/{name}`."""

from __future__ import annotations

import csv
import io

import orjson
from fpdf import FPDF
from taskiq import TaskiqDepends

from src.tasks.broker import Progress, artifacts, register_task

FORMATS = {"pdf": "application/pdf", "csv": "text/csv", "json": "application/json"}
TITLE = "Sales report"
ROWS_PER_PAGE = 25


def sample_rows(count: int) -> list[dict[str, object]]:
    """The report's data: a stand-in for a database query."""
    return [{"row": i, "region": f"region {i % 4}", "amount": i * 10} for i in range(count)]


def as_csv(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["row", "region", "amount"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def as_pdf(rows: list[dict[str, object]]) -> bytes:
    """A real PDF: a title on every page and `ROWS_PER_PAGE` rows per page."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for start in range(0, max(len(rows), 1), ROWS_PER_PAGE):
        pdf.add_page()
        pdf.cell(0, 10, f"{TITLE} (page {pdf.page_no()})", new_x="LMARGIN", new_y="NEXT")
        for row in rows[start : start + ROWS_PER_PAGE]:
            line = f"row {row['row']}  {row['region']}  {row['amount']}"
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@register_task(max_retries=1)
async def export_report(
    fmt: str, rows: int = 60, progress: Progress = TaskiqDepends()
) -> dict[str, object]:
    """Build the report in `fmt` in three stages, and store it as `report.<fmt>`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {sorted(FORMATS)}")
    await progress.update(current=0, total=3, stage="query", message="reading the data")
    data = sample_rows(rows)
    await progress.update(current=1, total=3, stage="render", message=f"rendering {fmt}")
    body = {"pdf": as_pdf, "csv": as_csv}.get(fmt, orjson.dumps)(data)
    await progress.update(current=2, total=3, stage="store", message="storing the file")
    artifact = await artifacts.put(f"report.{fmt}", body, content_type=FORMATS[fmt])
    await progress.update(current=3, total=3, stage="done", message="ready to download")
    return {"name": artifact.name, "size": artifact.size}
