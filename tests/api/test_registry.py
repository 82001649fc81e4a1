"""`GET /api/v1/registry`: the API-submittable tasks with the schema their arguments are
checked against, the same one `POST /api/v1/tasks` uses."""

from __future__ import annotations

import httpx

from tests.support import tasks

TYPED = "tests.support.tasks:typed"


async def test_registry_lists_submittable_tasks_with_their_argument_schema(
    client: httpx.AsyncClient,
) -> None:
    assert tasks.typed.labels["api"] is True
    response = await client.get("/api/v1/registry")
    assert response.status_code == 200, response.text
    listed = {t["name"]: t for t in response.json()["tasks"]}
    assert "tests.support.tasks:internal_only" not in listed, "only api=True tasks"
    assert all(t["api"] for t in listed.values())
    typed = listed[TYPED]
    schema = typed["arguments"]
    assert schema["required"] == ["name"]
    assert schema["properties"]["count"] == {"default": 1, "title": "Count", "type": "integer"}
    assert schema["additionalProperties"] is False
    assert typed["labels"] == {"api": True}
    stepper = listed["tests.support.tasks:stepper"]
    assert list(stepper["arguments"]["properties"]) == ["steps"], "injected progress left out"


async def test_what_the_schema_refuses_the_submit_route_refuses(client: httpx.AsyncClient) -> None:
    schema = next(
        t["arguments"]
        for t in (await client.get("/api/v1/registry")).json()["tasks"]
        if t["name"] == TYPED
    )
    assert schema["properties"]["count"]["type"] == "integer"
    refused = await client.post(
        "/api/v1/tasks", json={"task": TYPED, "kwargs": {"name": "x", "count": "many"}}
    )
    assert refused.status_code == 422
    unknown = await client.post(
        "/api/v1/tasks", json={"task": TYPED, "kwargs": {"name": "x", "colour": "red"}}
    )
    assert unknown.status_code == 422, "additionalProperties: false holds on submit too"
    accepted = await client.post("/api/v1/tasks", json={"task": TYPED, "kwargs": {"name": "x"}})
    assert accepted.status_code == 202
