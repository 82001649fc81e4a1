"""REST API v1 for tasks and queues, through real NATS, Redis and worker processes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from src.config import Settings
from src.engine.core.errors import TaskCancelledError
from src.tasks.broker import broker as app_broker
from tests.api.conftest import api_client, bearer
from tests.conftest import READ_KEY, SUBMIT_KEY, StartWorker
from tests.support import tasks
from tests.support.processes import eventually

TYPED = "tests.support.tasks:typed"


def _key() -> str:
    return uuid.uuid4().hex


async def _state_is(client: httpx.AsyncClient, task_id: str, *states: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    return body if body.get("state") in states else None


async def _submit(client: httpx.AsyncClient, task: str, **body: Any) -> str:
    response = await client.post("/api/v1/tasks", json={"task": task, **body})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def _count(prefix: str, key: str) -> int:
    return int(await app_broker.results.redis.get(f"{prefix}:{key}") or 0)


# Submit ---------------------------------------------------------------------------------------
async def test_submit_runs_the_task_and_links_to_it(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker()
    response = await client.post(
        "/api/v1/tasks", json={"task": TYPED, "args": ["x"], "kwargs": {"count": "3"}}
    )
    assert response.status_code == 202
    body = response.json()
    task_id = body["task_id"]
    assert body["state"] == "PENDING"
    assert response.headers["location"] == body["links"]["self"]
    assert body["links"] == {
        "self": f"/api/v1/tasks/{task_id}",
        "events": f"/api/v1/tasks/{task_id}/events",
        "websocket": f"/api/v1/tasks/{task_id}/ws",
        "cancel": f"/api/v1/tasks/{task_id}/cancel",
    }, "relative without TASKJET_PUBLIC_URL"

    done = await eventually(lambda: _state_is(client, task_id, "SUCCESS"), what="task done")
    assert done["result"] == {"name": "x", "count": 3, "tags": []}, "kwargs were validated"
    assert done["task_name"] == TYPED
    assert done["kwargs"] == {"name": "x", "count": 3, "tags": None}
    assert done["attempts"] == 1
    assert done["worker"]
    assert done["queued_at"] <= done["started_at"] <= done["finished_at"]
    assert done["runtime_s"] >= 0


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({"kwargs": {}}, "name"),
        ({"kwargs": {"name": "x", "count": "many"}}, "count"),
        ({"kwargs": {"name": "x", "colour": "red"}}, "colour"),
        ({"kwargs": {"name": "x", "tags": "not-a-list"}}, "tags"),
    ],
    ids=["missing", "wrong-type", "unexpected", "list-expected"],
)
async def test_submit_validates_arguments_against_the_signature(
    client: httpx.AsyncClient, body: dict[str, Any], bad_field: str
) -> None:
    response = await client.post("/api/v1/tasks", json={"task": TYPED, **body})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(bad_field in d["loc"] for d in error["details"]), error


async def test_submit_rejects_too_many_and_doubled_arguments(client: httpx.AsyncClient) -> None:
    many = await client.post("/api/v1/tasks", json={"task": TYPED, "args": [1, 2, 3, 4]})
    assert many.status_code == 422
    twice = await client.post(
        "/api/v1/tasks", json={"task": TYPED, "args": ["a"], "kwargs": {"name": "b"}}
    )
    assert twice.status_code == 422
    assert twice.json()["error"]["details"][0]["loc"] == ["body", "kwargs", "name"]


@pytest.mark.parametrize(
    "task", ["no.such:task", "tests.support.tasks:internal_only"], ids=["unknown", "not-api"]
)
async def test_submit_unknown_or_internal_task_is_404(client: httpx.AsyncClient, task: str) -> None:
    response = await client.post("/api/v1/tasks", json={"task": task})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_task"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"priority": 12}, "priority"),
        ({"queue": "bad queue!"}, "queue"),
        ({"client_id": "a.b"}, "client_id"),
        ({"delay": -1}, "delay"),
        ({"timeout": 0}, "timeout"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"colour": 1}, "colour"),
    ],
    ids=["priority", "queue", "client", "delay", "timeout", "idempotency", "unknown-option"],
)
async def test_submit_validates_options(
    client: httpx.AsyncClient, options: dict[str, Any], option: str
) -> None:
    response = await client.post(
        "/api/v1/tasks", json={"task": TYPED, "kwargs": {"name": "x"}, "options": options}
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [d["loc"] for d in details] == [["body", "options", option]], details


@pytest.mark.settings(api_max_body_bytes=2048)
async def test_payload_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = {"task": TYPED, "kwargs": {"name": "x" * 4096}}
    response = await client.post("/api/v1/tasks", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: counted while read
        for _ in range(8):
            yield b" " * 512

    streamed = await client.post(
        "/api/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_idempotency_key_returns_the_same_task_and_runs_it_once(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    key = _key()
    body = {
        "task": "tests.support.tasks:counted",
        "kwargs": {"key": key},
        "options": {"idempotency_key": f"order-{key}"},
    }
    first = (await client.post("/api/v1/tasks", json=body)).json()["task_id"]
    second = (await client.post("/api/v1/tasks", json=body)).json()["task_id"]
    assert first == second
    await start_worker()
    done = await eventually(lambda: _state_is(client, first, "SUCCESS"), what="ran")
    assert done["result"] == 1
    third = (await client.post("/api/v1/tasks", json=body)).json()["task_id"]
    assert third == first
    marker = await _submit(client, TYPED, kwargs={"name": "after"})
    await eventually(lambda: _state_is(client, marker, "SUCCESS"), what="worker past both")
    assert await _count("test-count", key) == 1, "dispatched three times, run once"


# Read and list -------------------------------------------------------------------------------
async def test_list_filters_by_state_and_name_newest_first(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    ids = [await _submit(client, TYPED, kwargs={"name": str(i)}) for i in range(5)]
    queued = (await client.get("/api/v1/tasks", params={"state": "PENDING"})).json()
    assert [item["task_id"] for item in queued["items"]] == ids[::-1]

    await start_worker()
    for task_id in ids:
        await eventually(lambda t=task_id: _state_is(client, t, "SUCCESS"), what="done")
    by_name = (await client.get("/api/v1/tasks", params={"name": TYPED, "limit": 2})).json()
    assert [item["task_id"] for item in by_name["items"]] == ids[:-3:-1]
    rest = (
        await client.get(
            "/api/v1/tasks", params={"name": TYPED, "limit": 10, "cursor": by_name["next_cursor"]}
        )
    ).json()
    assert [item["task_id"] for item in rest["items"]] == ids[2::-1]
    assert (await client.get("/api/v1/tasks", params={"state": "PENDING"})).json()["items"] == []
    status = (await client.get("/api/v1/queues/status")).json()
    assert status["states"]["SUCCESS"] == 5


async def test_list_rejects_bad_queries(client: httpx.AsyncClient) -> None:
    for params in ({"state": "NAPPING"}, {"limit": 0}, {"limit": 501}, {"cursor": "%%%"}):
        response = await client.get("/api/v1/tasks", params=params)
        assert response.status_code == 422, params


# Cancel, retry, delete -----------------------------------------------------------------------
async def test_cancel_a_queued_task_it_never_starts(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    key = _key()
    task_id = await _submit(client, "tests.support.tasks:hang", kwargs={"key": key})
    response = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "CANCELLED"
    handle_result = await app_broker.results.get_result(task_id)
    assert isinstance(handle_result.error, TaskCancelledError)
    assert str(handle_result.error) == "task was cancelled before it started"

    await start_worker()
    marker = await _submit(client, TYPED, kwargs={"name": "after"})
    await eventually(lambda: _state_is(client, marker, "SUCCESS"), what="worker past it")
    assert await _count("test-count", key) == 0, "the cancelled task never ran"
    assert (await _state_is(client, task_id, "CANCELLED")) is not None
    again = await client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"state": "CANCELLED"}


async def test_cancel_a_running_task_on_its_worker(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker()
    key = _key()
    handle = await tasks.hang.kiq(key)
    await eventually(lambda: _state_is(client, handle.task_id, "STARTED"), what="running")
    await eventually(lambda: _count_positive("test-count", key), what="in the function")
    assert (await client.post(f"/api/v1/tasks/{handle.task_id}/cancel")).status_code == 200
    result = await handle.wait_result(timeout=10)
    assert isinstance(result.error, TaskCancelledError)
    assert str(result.error) == "task was cancelled while it ran"
    assert await _count("test-cancelled", key) == 1, "cancelled inside the task"
    record = await eventually(
        lambda: _state_is(client, handle.task_id, "CANCELLED"), what="record says CANCELLED"
    )
    assert record["error"]["type"] == "TaskCancelledError"
    assert await app_broker.dlq.count() == 0, "a cancelled task is not dead-lettered"


async def _count_positive(prefix: str, key: str) -> bool:
    return await _count(prefix, key) > 0


async def test_cancel_from_python(client: httpx.AsyncClient, start_worker: StartWorker) -> None:
    from src.tasks.broker import cancel

    await start_worker()
    key = _key()
    handle = await tasks.hang.kiq(key)
    await eventually(lambda: _count_positive("test-count", key), what="running")
    record = await cancel(handle.task_id)
    assert record.state.value == "CANCELLED"
    result = await handle.wait_result(timeout=10)
    assert isinstance(result.error, TaskCancelledError)
    assert str(result.error) == "task was cancelled while it ran"


async def test_retry_a_dead_task_runs_it_again(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker()
    key = _key()
    task_id = await _submit(client, "tests.support.tasks:fails_first", kwargs={"key": key})
    dead = await eventually(lambda: _state_is(client, task_id, "DEAD"), what="dead")
    assert dead["error"]["message"] == "first run fails"
    assert dead["retryable"] is True
    assert [e["task_id"] for e in (await client.get("/api/v1/queues/dlq")).json()["items"]] == [
        task_id
    ]

    response = await client.post(f"/api/v1/tasks/{task_id}/retry")
    assert response.status_code == 202
    done = await eventually(lambda: _state_is(client, task_id, "SUCCESS"), what="retried")
    assert done["result"] == key
    assert done["error"] is None
    assert (await client.get("/api/v1/queues/dlq")).json()["total"] == 0, "taken out of the DLQ"
    assert (await client.post(f"/api/v1/tasks/{task_id}/retry")).status_code == 409


async def test_delete_a_finished_task(client: httpx.AsyncClient, start_worker: StartWorker) -> None:
    await start_worker()
    task_id = await _submit(client, TYPED, kwargs={"name": "x"})
    await eventually(lambda: _state_is(client, task_id, "SUCCESS"), what="done")
    assert (await client.delete(f"/api/v1/tasks/{task_id}")).status_code == 204
    assert (await client.get(f"/api/v1/tasks/{task_id}")).status_code == 404
    assert not await app_broker.results.is_result_ready(task_id)
    assert (await client.delete(f"/api/v1/tasks/{task_id}")).status_code == 404
    listed = (await client.get("/api/v1/tasks", params={"name": TYPED})).json()["items"]
    assert task_id not in [item["task_id"] for item in listed]


async def test_delete_a_live_task_is_409(client: httpx.AsyncClient) -> None:
    task_id = await _submit(client, TYPED, kwargs={"name": "x"})
    response = await client.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 409
    assert "cancel it" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/tasks/nope/cancel"),
        ("post", "/api/v1/tasks/nope/retry"),
        ("delete", "/api/v1/tasks/nope"),
        ("get", "/api/v1/tasks/nope/events"),
    ],
)
async def test_unknown_task_id_is_404_everywhere(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# Orphans -------------------------------------------------------------------------------------
@pytest.mark.faults
@pytest.mark.settings(ack_wait_s=60.0, worker_ttl_s=1.0)
async def test_requeue_orphaned_hands_back_a_killed_workers_task(
    client: httpx.AsyncClient, start_worker: StartWorker, settings: Settings
) -> None:
    victim = await start_worker()
    key = _key()
    handle = await tasks.stubborn.kiq(key)
    await eventually(lambda: _count_positive("test-count", key), what="first run under way")
    victim.kill()  # the manager and its worker processes at once, as a lost host would

    async def orphaned() -> dict[str, Any] | None:
        response = (await client.post("/api/v1/tasks/requeue-orphaned")).json()
        return response if response["handed_back"] else None

    outcome = await eventually(orphaned, what="worker seen gone")
    assert outcome == {"handed_back": [handle.task_id], "republished": []}
    await start_worker()
    # Well inside ack_wait (60 s): handed back, not left to time out.
    result = await handle.wait_result(timeout=30)
    assert result.return_value == 2


# Queues --------------------------------------------------------------------------------------
async def test_queue_status_shows_depths_states_and_workers(
    client: httpx.AsyncClient, start_worker: StartWorker, settings: Settings
) -> None:
    for i in range(3):
        await _submit(client, TYPED, kwargs={"name": str(i)})
    status = (await client.get("/api/v1/queues/status")).json()
    assert status["queues"] == {"primary": 3, "retry": 0, "scheduled": 0, "dlq": 0}
    assert status["states"]["PENDING"] == 3
    assert status["named_queues"]["default"]["messages"] == 3
    assert status["named_queues"]["default"]["consumed"] is False
    assert status["workers"] == []

    await start_worker()

    async def drained() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get("/api/v1/queues/status")).json()
        return body if body["queues"]["primary"] == 0 and body["workers"] else None

    status = await eventually(drained, what="queue drained")
    assert status["states"]["SUCCESS"] == 3
    assert status["named_queues"]["default"]["consumed"] is True
    assert status["workers"][0]["queues"] == ["default"]


async def test_dead_letter_endpoints(client: httpx.AsyncClient, start_worker: StartWorker) -> None:
    await start_worker()
    keys = [_key() for _ in range(3)]
    ids = [
        await _submit(client, "tests.support.tasks:fails_first", kwargs={"key": k}) for k in keys
    ]
    for task_id in ids:
        await eventually(lambda t=task_id: _state_is(client, t, "DEAD"), what="dead")
    listed = (await client.get("/api/v1/queues/dlq")).json()
    assert listed["total"] == 3
    assert {e["task_id"] for e in listed["items"]} == set(ids)
    assert listed["items"][0]["traceback"]

    nothing = await client.post("/api/v1/queues/dlq/requeue", json={})
    assert nothing.status_code == 422
    one = await client.post("/api/v1/queues/dlq/requeue", json={"task_ids": [ids[0]]})
    assert one.json() == {"requeued": [ids[0]], "skipped": []}
    await eventually(lambda: _state_is(client, ids[0], "SUCCESS"), what="requeued one ran")
    purged = await client.delete("/api/v1/queues/dlq")
    assert purged.json() == {"purged": 2}
    assert (await client.get("/api/v1/queues/dlq")).json()["total"] == 0


# Auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/tasks", None),
        ("post", "/api/v1/tasks", {"task": TYPED, "kwargs": {"name": "x"}}),
        ("get", "/api/v1/queues/status", None),
        ("delete", "/api/v1/queues/dlq", None),
        ("post", "/process", {"data": {}}),
    ],
)
async def test_missing_or_invalid_key_is_401(
    settings: Settings, method: str, path: str, body: Any
) -> None:
    async with api_client(settings, key=None) as client:
        missing = await client.request(method, path, json=body)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = await client.request(method, path, json=body, headers=bearer("x" * 30))
        assert wrong.status_code == 401
        assert "x" * 30 not in wrong.text, "a key is never echoed"


async def test_roles(settings: Settings) -> None:
    async with api_client(settings, key=READ_KEY) as reader:
        assert (await reader.get("/api/v1/tasks")).status_code == 200
        assert (await reader.get("/api/v1/queues/status")).status_code == 200
        submit = await reader.post("/api/v1/tasks", json={"task": TYPED, "kwargs": {"name": "x"}})
        assert submit.status_code == 403
        assert submit.json()["error"]["code"] == "forbidden"
    async with api_client(settings, key=SUBMIT_KEY) as submitter:
        task_id = await _submit(submitter, TYPED, kwargs={"name": "x"})
        assert (await submitter.get(f"/api/v1/tasks/{task_id}")).status_code == 200
        assert (await submitter.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 403
        assert (await submitter.delete("/api/v1/queues/dlq")).status_code == 403
        assert (await submitter.post("/api/v1/tasks/requeue-orphaned")).status_code == 403
    async with api_client(settings) as admin:
        assert (await admin.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 200


async def test_health_and_docs_need_no_key(settings: Settings) -> None:
    async with api_client(settings, key=None) as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
