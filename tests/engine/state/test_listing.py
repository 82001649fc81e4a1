"""Listing with filters, on a real Redis: every filter, the time range, id prefixes, and the
bounded stretch of index one page looks at."""

from __future__ import annotations

import time
import uuid

import pytest
from taskiq.message import TaskiqMessage

from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.state import listing
from src.engine.state.listing import RecordFilter
from src.engine.state.records import TaskRecords
from src.engine.state.transitions import Transition


async def _add(
    records: TaskRecords, count: int, queue: str, client: str | None = None
) -> list[str]:
    messages = [
        TaskiqMessage(
            task_id=uuid.uuid4().hex,
            task_name="listed",
            labels={"client_id": client} if client else {},
            args=[],
            kwargs={},
        )
        for _ in range(count)
    ]
    await records.apply(records.queued(m, queue, b"{}", queued_at=time.time()) for m in messages)
    return [m.task_id for m in messages]


async def _all(records: TaskRecords, where: RecordFilter, limit: int = 7) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await records.page(limit=limit, cursor=cursor, where=where)
        seen.extend(r.task_id for r in page.records)
        if (cursor := page.next_cursor) is None:
            return seen


async def test_filters_keep_only_matching_records_newest_first(broker: JetStreamBroker) -> None:
    records = broker.records
    before = time.time()
    plain = await _add(records, 20, "default")
    web = await _add(records, 15, "email", client="web")
    middle = time.time()
    late = await _add(records, 10, "default")
    await records.apply(
        [Transition(plain[0], "listed", TaskState.STARTED, "start", {"worker": "w-1"})]
    )
    assert await _all(records, RecordFilter(queue="email")) == web[::-1]
    assert await _all(records, RecordFilter(client_id="web")) == web[::-1]
    assert await _all(records, RecordFilter(worker="w-1")) == [plain[0]]
    assert await _all(records, RecordFilter(state=TaskState.STARTED)) == [plain[0]]
    by_name = RecordFilter(task_name="listed", state=TaskState.STARTED)
    assert await _all(records, by_name) == [plain[0]]
    assert await _all(records, RecordFilter(task_name="listed", queue="email")) == web[::-1]
    assert await _all(records, RecordFilter(since=middle)) == late[::-1]
    assert await _all(records, RecordFilter(until=middle, since=before)) == (plain + web)[::-1]
    assert await _all(records, RecordFilter(id_prefix=web[3][:20])) == [web[3]]
    assert await _all(records, RecordFilter(queue="nowhere")) == []


async def test_a_rare_match_answers_a_short_page_with_a_cursor(
    broker: JetStreamBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = broker.records
    rare = await _add(records, 1, "rare")
    await _add(records, 60, "default")
    monkeypatch.setattr(listing, "MAX_SCAN", 25)
    first = await records.page(limit=5, where=RecordFilter(queue="rare"))
    assert first.records == []
    assert first.next_cursor is not None
    assert await _all(records, RecordFilter(queue="rare"), limit=5) == rare


async def test_a_page_reads_only_the_records_it_returns_and_skips_none(
    broker: JetStreamBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = broker.records
    email = await _add(records, 30, "email")
    plain = await _add(records, 5, "default")
    read: list[str] = []
    get_many = records.get_many

    async def counted(task_ids: list[str]) -> list[object]:
        read.extend(task_ids)
        return await get_many(task_ids)  # type: ignore[return-value]

    monkeypatch.setattr(records, "get_many", counted)
    page = await records.page(limit=5, where=RecordFilter(queue="email"))
    assert [r.task_id for r in page.records] == email[::-1][:5]
    assert len(read) == 5
    read.clear()
    page = await records.page(limit=5, where=RecordFilter(task_name="listed"))
    assert len(read) == 5
    # Records gone from under their index entries: the page goes on past them, in order,
    # and leaves out no match it did not read.
    for task_id in email[-3:]:
        await records.redis.delete(records.layout.record_key(task_id))
    page = await records.page(limit=5, where=RecordFilter(queue="email"))
    assert [r.task_id for r in page.records] == email[::-1][3:8]
    assert await _all(records, RecordFilter(queue="email"), limit=4) == email[::-1][3:]
    for task_id in plain[:2]:
        await records.redis.delete(records.layout.record_key(task_id))
    expected = (email[:-3] + plain[2:])[::-1]
    assert await _all(records, RecordFilter(task_name="listed"), limit=4) == expected


async def test_pages_through_equal_queue_times_in_byte_order_whatever_the_ids(
    broker: JetStreamBroker,
) -> None:
    """Tasks indexed in the same microsecond share a score: the cursor goes on by id, in the
    byte order Redis keeps them in (not the server's locale), missing none and repeating none."""
    records = broker.records
    ids = [f"{lead}{n}" for lead in ("A", "a", "-", "_", "Z", "0", "é") for n in range(4)]
    messages = [
        TaskiqMessage(task_id=i, task_name="same-time", labels={}, args=[], kwargs={}) for i in ids
    ]
    await records.apply(records.queued(m, "q", b"{}", queued_at=time.time()) for m in messages)
    same = int(time.time() * 1_000_000)  # as if all were written in one microsecond
    for index in ("all", "name:same-time", "state:PENDING"):
        key = records.layout.index_key(*index.split(":", 1))
        await records.redis.zadd(key, dict.fromkeys(ids, same))
    newest_first = sorted(ids, key=lambda i: i.encode(), reverse=True)
    assert await _all(records, RecordFilter(task_name="same-time"), limit=3) == newest_first
    assert await _all(records, RecordFilter(queue="q"), limit=5) == newest_first
    assert await _all(records, RecordFilter(queue="q", id_prefix="a"), limit=1) == [
        i for i in newest_first if i.startswith("a")
    ]
