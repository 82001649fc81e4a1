"""Messages taskjet did not write, published straight to NATS: listings pass over them (and log
them), requeue skips what cannot run and says why; nothing answers 500."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.core.layout import Layout
from src.engine.state.dead_letters import DeadLetter
from src.tasks.broker import broker as app_broker
from tests.conftest import StartWorker
from tests.support.processes import eventually

EXAMPLE = "src.tasks.example:example_task"


@pytest.mark.parametrize(
    "rest",
    ["a.b.c", "orders.medium", "bad/name", "x" * 300, "q.high.extra"],
    ids=["three-tokens", "unknown-lane", "slash", "too-long", "lane-and-more"],
)
async def test_queue_status_passes_over_subjects_that_name_no_queue(
    client: httpx.AsyncClient,
    js: JetStreamContext,
    settings: Settings,
    rest: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    layout = Layout.from_settings(settings)
    await js.publish(f"{layout.subject_prefix}.tasks.{rest}", b"not a task", stream=layout.stream)
    await js.publish(layout.task_subject("orders", "high"), b"{}", stream=layout.stream)
    with caplog.at_level(logging.WARNING, logger="taskjet.monitor"):
        response = await client.get("/api/v1/queues/status")
    assert response.status_code == 200, response.text
    named = response.json()["named_queues"]
    assert named["orders"]["lanes"] == {"high": 1, "normal": 0, "low": 0}
    assert set(named) == {"orders", settings.default_queue}
    assert any("names no queue" in record.getMessage() for record in caplog.records)


def _entry(task_id: str, settings: Settings, **fields: object) -> DeadLetter:
    values: dict[str, object] = {
        "task_id": task_id,
        "task_name": EXAMPLE,
        "queue": settings.default_queue,
        "reason": "failed",
        "kwargs": {"data": {"id": task_id}},
        "labels": {"dispatch": 1},
        **fields,
    }
    return DeadLetter.model_validate(values)


async def test_dead_letter_listing_passes_over_garbage(
    client: httpx.AsyncClient, js: JetStreamContext, settings: Settings
) -> None:
    layout = Layout.from_settings(settings)
    subject = layout.dlq_subject(settings.default_queue)
    good = uuid.uuid4().hex
    for garbage in (b"not json", b"[]", b"null", b'{"task_id": 5}', b'{"reason": "bored"}'):
        await js.publish(subject, garbage, stream=layout.dlq_stream)
    await app_broker.dlq.add(_entry(good, settings), source_sequence=1)
    await js.publish(subject, b"\xff\xfe", stream=layout.dlq_stream)

    listed = await client.get("/api/v1/queues/dlq")
    assert listed.status_code == 200, listed.text
    assert [item["task_id"] for item in listed.json()["items"]] == [good]
    by_name = await client.get("/api/v1/queues/dlq", params={"task_name": EXAMPLE})
    assert [item["task_id"] for item in by_name.json()["items"]] == [good]
    requeued = await client.post("/api/v1/queues/dlq/requeue", json={"all": True})
    assert requeued.status_code == 200
    assert requeued.json() == {"requeued": [good], "skipped": []}
    purged = await client.delete("/api/v1/queues/dlq", params={"task_name": EXAMPLE})
    assert purged.status_code == 200


async def test_requeue_skips_entries_that_cannot_run_and_runs_the_others(
    client: httpx.AsyncClient,
    js: JetStreamContext,
    settings: Settings,
    start_worker: StartWorker,
) -> None:
    layout = Layout.from_settings(settings)
    ids = {name: uuid.uuid4().hex for name in ("good", "dispatch", "priority", "queue", "other")}
    bad = {
        "dispatch": {"labels": {"dispatch": "x"}},
        "priority": {"labels": {"dispatch": 1, "priority": "urgent"}},
        "queue": {"queue": "no such/queue"},
    }
    for name, task_id in ids.items():
        entry = _entry(task_id, settings, **bad.get(name, {}))
        await js.publish(  # as something other than taskjet would: any queue field at all
            layout.dlq_subject(settings.default_queue),
            entry.model_dump_json(exclude={"sequence"}).encode(),
            stream=layout.dlq_stream,
        )

    response = await client.post("/api/v1/queues/dlq/requeue", json={"all": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requeued"] == [ids["good"], ids["other"]]
    reasons = {item["task_id"]: item["reason"] for item in body["skipped"]}
    assert reasons == {
        ids["dispatch"]: "dispatch must be a positive integer, got 'x'",
        ids["priority"]: "priority 'urgent' must be 0-9 or high/default/low",
        ids["queue"]: "queue name 'no such/queue' may only hold letters, digits, '_' and '-' "
        "(at most 64)",
    }
    left = (await client.get("/api/v1/queues/dlq")).json()["items"]
    assert {item["task_id"] for item in left} == {ids["dispatch"], ids["priority"], ids["queue"]}

    await start_worker("src.tasks.example")
    for name in ("good", "other"):
        await eventually(
            lambda n=name: _succeeded(client, ids[n]), what=f"requeued {name} task ran"
        )


async def _succeeded(client: httpx.AsyncClient, task_id: str) -> bool:
    record = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    return bool(record.get("state") == "SUCCESS")
