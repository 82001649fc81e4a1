"""`artifacts.put(...)` inside a running task: files stored against the task that runs.

from src.tasks.broker import artifacts

@register_task()
async def export(report_id: int) -> str:
    await artifacts.put("report.pdf", pdf_bytes, content_type="application/pdf")
    await artifacts.put("data.csv", open("/tmp/data.csv", "rb"), content_type="text/csv")
    await artifacts.put("big.bin", chunks_async_iterator())   # never whole in memory
"""

from __future__ import annotations

from src.engine.state.artifacts import Artifact, ArtifactStore, Data
from src.engine.worker.delivery import current_delivery


class TaskArtifacts:
    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    async def put(
        self, name: str, data: Data, content_type: str = "application/octet-stream"
    ) -> Artifact:
        """Store `data` (bytes, a binary file, or an async iterable of bytes) as `name`,
        linked to the running task; readable at `GET /api/v1/tasks/{id}/artifacts/{name}`."""
        delivery = current_delivery.get()
        if delivery is None:
            raise RuntimeError("artifacts.put() stores files of a running task: call it in one")
        return await self._store.put(delivery.task_id, name, data, content_type)
