"""A task's labels in its detail: redacted, and absent (not an error) when its kept message
does not read as a task."""

from __future__ import annotations

import time
import uuid

from taskiq.message import TaskiqMessage

from src.config import Settings
from src.tasks.broker import broker
from tests.api.conftest import api_client


async def test_labels_are_shown_redacted_or_left_out(settings: Settings) -> None:
    async with api_client(settings) as client:
        good = TaskiqMessage(
            task_id=uuid.uuid4().hex,
            task_name="x",
            labels={"token": "t", "team": "a"},
            args=[],
            kwargs={},
        )
        odd = good.model_copy(update={"task_id": uuid.uuid4().hex})
        records = broker.records
        await records.apply(
            [
                records.queued(
                    good, "default", good.model_dump_json().encode(), queued_at=time.time()
                )
            ]
        )
        await records.apply([records.queued(odd, "default", b"{not a task", queued_at=time.time())])
        shown = (await client.get(f"/api/v1/tasks/{good.task_id}")).json()
        assert shown["labels"] == {"token": "***", "team": "a"}
        unread = await client.get(f"/api/v1/tasks/{odd.task_id}")
        assert unread.status_code == 200
        assert unread.json()["labels"] is None
