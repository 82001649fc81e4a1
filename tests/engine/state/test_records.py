"""Task records and their indexes, on a real Redis."""

from __future__ import annotations

import time
import uuid

from taskiq.message import TaskiqMessage

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.state.records import TaskRecords
from src.engine.state.transitions import Transition
from tests.api.conftest import api_client


def _message(name: str) -> TaskiqMessage:
    return TaskiqMessage(
        task_id=uuid.uuid4().hex, task_name=name, labels={}, args=[1], kwargs={"password": "pw"}
    )


async def _create(records: TaskRecords, count: int, names: tuple[str, ...]) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 1000):
        batch = [_message(names[i % len(names)]) for i in range(start, min(count, start + 1000))]
        await records.apply(
            records.queued(m, "default", b"{}", queued_at=time.time()) for m in batch
        )
        ids.extend(m.task_id for m in batch)
    return ids


async def test_ten_thousand_records_page_newest_first_without_gaps(
    broker: JetStreamBroker,
) -> None:
    records = broker.records
    ids = await _create(records, 10_000, ("a", "b"))
    seen: list[str] = []
    cursor = None
    while True:
        page = await records.page(limit=500, cursor=cursor)
        seen.extend(r.task_id for r in page.records)
        if len(seen) == 500:  # new tasks arriving mid-listing never shift later pages
            await _create(records, 25, ("a",))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]
    counts = await records.counts()
    assert counts[TaskState.PENDING] == 10_025
    by_name = []
    cursor = None
    while True:
        page = await records.page(task_name="b", limit=300, cursor=cursor)
        by_name.extend(r.task_id for r in page.records)
        if (cursor := page.next_cursor) is None:
            break
    assert by_name == ids[1::2][::-1]


async def test_listing_by_state_through_the_api(settings: Settings) -> None:
    async with api_client(settings) as client:
        from src.tasks.broker import broker

        ids = await _create(broker.records, 2_000, ("a",))
        await broker.records.apply(
            Transition(task_id, "a", TaskState.SUCCESS, "final") for task_id in ids[:700]
        )
        seen: list[str] = []
        params: dict[str, str | int] = {"state": "SUCCESS", "limit": 200}
        while True:
            body = (await client.get("/api/v1/tasks", params=params)).json()
            seen.extend(item["task_id"] for item in body["items"])
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert seen == ids[:700][::-1]
        status = (await client.get("/api/v1/queues/status")).json()
        assert status["states"]["SUCCESS"] == 700
        assert status["states"]["PENDING"] == 1_300
        first = (await client.get(f"/api/v1/tasks/{ids[0]}")).json()
        assert first["kwargs"] == {"password": "***"}, "secret-looking arguments are redacted"


async def test_oversized_arguments_are_not_shown(broker: JetStreamBroker) -> None:
    records = broker.records
    message = TaskiqMessage(
        task_id=uuid.uuid4().hex, task_name="a", labels={}, args=["x" * 10_000], kwargs={}
    )
    await records.apply([records.queued(message, "default", b"{}", queued_at=time.time())])
    record = await records.get(message.task_id)
    assert record is not None
    assert record.args_truncated
    assert record.args is None


async def test_bad_cursor_is_a_clear_error(settings: Settings) -> None:
    async with api_client(settings) as client:
        response = await client.get("/api/v1/tasks", params={"cursor": "bm90LWEtY3Vyc29y"})
        assert response.status_code == 422
        assert response.json()["error"]["details"] == [{"loc": ["query", "cursor"]}]
