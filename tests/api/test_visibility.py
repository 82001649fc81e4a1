"""What keys are shown: secrets redacted at any depth for everyone, tracebacks for admin keys,
and links that never come from the request's Host header."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from src.config import Settings
from src.engine.core.redaction import REDACTED
from src.engine.state.dead_letters import DeadLetter
from src.tasks.broker import broker as app_broker
from tests.api.conftest import bearer
from tests.conftest import READ_KEY, SUBMIT_KEY, StartWorker
from tests.support.processes import eventually

EXAMPLE = "src.tasks.example:example_task"
SECRETS = ("hunter2", "k-one", "k-two", "t-three", "c-four", "p-five")
DATA: dict[str, Any] = {
    "user": "ann",
    "Password": "hunter2",
    "nested": [{"X-Api-Key": "k-one"}, {"deep": {"API_KEY": "k-two", "note": "kept"}}],
    "rows": [[{"access_token": "t-three"}]],
    "db": {"credentials": {"user": "c-four"}},
}


def _hidden(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


async def _state(client: httpx.AsyncClient, task_id: str, *states: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    return body if body.get("state") in states else None


async def test_secrets_are_hidden_in_records_results_and_schedules(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    response = await client.post("/api/v1/tasks", json={"task": EXAMPLE, "args": [DATA]})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    await start_worker("src.tasks.example")  # after the PENDING record is written
    done = await eventually(lambda: _state(client, task_id, "SUCCESS"), what="done")
    assert done["kwargs"]["data"]["nested"][1]["deep"] == {"API_KEY": REDACTED, "note": "kept"}
    assert done["result"]["echo"]["Password"] == REDACTED
    assert done["result"]["keys"] == sorted(DATA), "only values under secret keys are hidden"
    created = await client.post(
        "/api/v1/schedules", json={"task": EXAMPLE, "interval": 3600, "args": [DATA]}
    )
    assert created.status_code == 201
    assert _hidden(created.text)
    for path in (f"/api/v1/tasks/{task_id}", "/api/v1/tasks", "/api/v1/schedules"):
        shown = await client.get(path, headers=bearer(READ_KEY))
        assert shown.status_code == 200
        assert _hidden(shown.text), path
        assert REDACTED in shown.text
    stored = await app_broker.results.get_result(task_id)
    assert stored.return_value["echo"] == DATA, "what is stored stays whole"


async def test_dead_letters_are_shown_redacted_and_requeued_whole(
    client: httpx.AsyncClient, settings: Settings, start_worker: StartWorker
) -> None:
    task_id = uuid.uuid4().hex
    await app_broker.dlq.add(
        DeadLetter(
            task_id=task_id,
            task_name=EXAMPLE,
            queue=settings.default_queue,
            reason="failed",
            attempts=1,
            error_type="ConnectionError",
            error_message="could not reach the database",
            traceback='File "/srv/app/db.py", line 7\nConnectionError: redis://u:pw@db:6379',
            labels={"dispatch": 1, "meta": {"Cookie": "c-four"}},
            args=[],
            kwargs={"data": DATA},
        ),
        source_sequence=1,
    )
    listed = await client.get("/api/v1/queues/dlq", headers=bearer(READ_KEY))
    assert listed.status_code == 200
    assert _hidden(listed.text)
    entry = listed.json()["items"][0]
    assert entry["kwargs"]["data"]["Password"] == REDACTED
    assert entry["labels"]["meta"] == {"Cookie": REDACTED}
    assert entry["traceback"] is None, "tracebacks are for admin keys"
    assert (entry["error_type"], entry["error_message"]) == (
        "ConnectionError",
        "could not reach the database",
    )
    as_admin = (await client.get("/api/v1/queues/dlq")).json()["items"][0]
    assert "redis://u:pw@db" in as_admin["traceback"]
    assert as_admin["kwargs"]["data"]["Password"] == REDACTED, "redacted for admin keys too"

    await start_worker("src.tasks.example")
    requeued = await client.post("/api/v1/queues/dlq/requeue", json={"task_ids": [task_id]})
    assert requeued.json() == {"requeued": [task_id], "skipped": []}
    await eventually(lambda: _state(client, task_id, "SUCCESS"), what="requeued task ran")
    stored = await app_broker.results.get_result(task_id)
    assert stored.return_value["echo"] == DATA, "the requeued task ran with its real arguments"


@pytest.mark.parametrize(
    "read_sees",
    [False, pytest.param(True, marks=pytest.mark.settings(api_tracebacks="all"))],
    ids=["admin-only", "shown-to-all"],
)
async def test_tracebacks_are_for_admin_keys_unless_shown_to_all(
    client: httpx.AsyncClient, start_worker: StartWorker, read_sees: bool
) -> None:
    response = await client.post(
        "/api/v1/tasks", json={"task": "src.tasks.example:fail_task", "args": ["boom"]}
    )
    task_id = response.json()["task_id"]
    await start_worker("src.tasks.example")  # after the PENDING record is written
    dead = await eventually(lambda: _state(client, task_id, "DEAD"), what="dead")
    assert "RuntimeError: boom" in dead["error"]["traceback"]
    for key in (READ_KEY, SUBMIT_KEY):
        as_key = bearer(key)
        record = (await client.get(f"/api/v1/tasks/{task_id}", headers=as_key)).json()
        listed = (await client.get("/api/v1/tasks", headers=as_key)).json()["items"][0]
        dlq = (await client.get("/api/v1/queues/dlq", headers=as_key)).json()["items"][0]
        assert record["error"]["type"] == "RuntimeError"
        assert record["error"]["message"] == "boom"
        shown = [record["error"]["traceback"], listed["error"]["traceback"], dlq["traceback"]]
        assert all(shown) if read_sees else shown == [None, None, None]


async def test_links_never_come_from_the_host_header(client: httpx.AsyncClient) -> None:
    evil = {"Host": "evil.example"}
    submitted = await client.post(
        "/api/v1/tasks", json={"task": "tests.support.tasks:typed", "args": ["x"]}, headers=evil
    )
    assert submitted.status_code == 202
    task_id = submitted.json()["task_id"]
    assert "evil" not in submitted.text
    assert submitted.headers["location"] == f"/api/v1/tasks/{task_id}"
    assert submitted.json()["links"]["websocket"] == f"/api/v1/tasks/{task_id}/ws"
    read = await client.get(f"/api/v1/tasks/{task_id}", headers=evil)
    assert read.json()["links"]["self"] == f"/api/v1/tasks/{task_id}"
    process = await client.post("/process", json={"data": {}}, headers=evil)
    assert process.json()["status_url"].startswith("/api/v1/tasks/")
    slash = await client.get("/api/v1/tasks/", headers=evil)
    assert slash.status_code == 404, "no redirect built from the Host header"
    assert "evil" not in slash.headers.get("location", "")


@pytest.mark.settings(public_url="https://jobs.example.com/taskjet/")
async def test_links_use_the_public_url(client: httpx.AsyncClient) -> None:
    submitted = await client.post(
        "/api/v1/tasks",
        json={"task": "tests.support.tasks:typed", "args": ["x"]},
        headers={"Host": "evil.example"},
    )
    task_id = submitted.json()["task_id"]
    base = f"https://jobs.example.com/taskjet/api/v1/tasks/{task_id}"
    assert submitted.json()["links"] == {
        "self": base,
        "events": f"{base}/events",
        "websocket": f"wss://jobs.example.com/taskjet/api/v1/tasks/{task_id}/ws",
        "cancel": f"{base}/cancel",
    }
    assert submitted.headers["location"] == base
