"""The HTTP API against real NATS, Redis and a real worker process."""

from __future__ import annotations

import httpx
import pytest

from src.api.app import create_app
from src.config import ConfigError, load_settings
from src.embedded import EmbeddedServers
from src.tasks.broker import broker as app_broker
from tests.api.conftest import api_client
from tests.conftest import StartWorker, isolated_settings
from tests.support.processes import eventually


async def _healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health")).status_code == 200


async def test_process_then_status(client: httpx.AsyncClient, start_worker: StartWorker) -> None:
    await start_worker("src.tasks.example")
    response = await client.post("/process", json={"data": {"b": 2, "a": 1}})
    assert response.status_code == 202
    body = response.json()
    task_id = body["task_id"]
    assert body["status_url"].endswith(f"/api/v1/tasks/{task_id}")

    async def finished() -> dict[str, object] | None:
        status = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        return status if status["state"] != "PENDING" else None

    status = await eventually(finished, what="task finished")
    assert status["state"] == "SUCCESS"
    assert status["result"] == {"keys": ["a", "b"], "size": 2, "echo": {"b": 2, "a": 1}}
    assert status["error"] is None


async def test_failed_task_status_names_the_error(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    from src.tasks.example import fail_task

    await start_worker("src.tasks.example")
    handle = await fail_task.kiq("broken on purpose")
    await handle.wait_result(timeout=30)
    status = (await client.get(f"/api/v1/tasks/{handle.task_id}")).json()
    assert status["state"] == "DEAD", "a failure that is not retried is dead-lettered"
    assert status["error"]["type"] == "RuntimeError"
    assert status["error"]["message"] == "broken on purpose"
    assert "RuntimeError: broken on purpose" in status["error"]["traceback"]


async def test_unknown_task_id_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/tasks/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [{}, {"data": "not an object"}, {"data": [1]}, None],
    ids=["empty", "str", "list", "none"],
)
async def test_process_rejects_bad_input(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/process", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]


async def test_process_rejects_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/process", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_unknown_route_uses_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": None}
    }


async def test_openapi_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/process", "/api/v1/tasks/{task_id}", "/health"} <= set(paths)


async def test_health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "nats": {"ok": True, "detail": None},
        "redis": {"ok": True, "detail": None},
    }


@pytest.mark.faults
async def test_health_503_while_redis_is_down(private_servers: EmbeddedServers) -> None:
    settings = isolated_settings(private_servers)
    async with api_client(settings) as client:
        assert (await client.get("/health")).status_code == 200
        private_servers.redis.stop()
        response = await client.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["nats"]["ok"] is True
        assert body["redis"]["ok"] is False
        assert body["redis"]["detail"]
        private_servers.redis.start()

        await eventually(lambda: _healthy(client), what="health back to 200 after Redis restart")


@pytest.mark.faults
async def test_health_503_while_nats_is_down(private_servers: EmbeddedServers) -> None:
    settings = isolated_settings(private_servers)
    async with api_client(settings) as client:
        private_servers.nats.stop()
        response = await client.get("/health")
        assert response.status_code == 503
        assert response.json()["nats"]["ok"] is False
        private_servers.nats.start()

        await eventually(lambda: _healthy(client), what="health back to 200 after NATS restart")


def test_app_refuses_to_start_without_api_keys() -> None:
    with pytest.raises(ConfigError, match="no API keys configured"):
        create_app(load_settings())


def test_app_uses_the_application_broker() -> None:
    app = create_app(load_settings(auth="disabled"))
    assert app.title == "taskjet"
    assert app.state.broker is app_broker
    assert app_broker.find_task("src.tasks.example:example_task") is not None
