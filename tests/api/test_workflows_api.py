"""`GET /api/v1/workflows/{id}` and `POST /api/v1/workflows/{id}/cancel`."""

from __future__ import annotations

from pathlib import Path

import httpx

from src.tasks.broker import chain
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


async def test_a_workflow_record_lists_its_steps(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await chain(tasks.add.s(1, 1), tasks.explode.s("api")).kiq()
    await handle.wait_result(timeout=60)
    response = await client.get(f"/api/v1/workflows/{handle.workflow_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["state"], body["failed_step"]) == ("chain", "FAILURE", "2-explode")
    assert [(s["id"], s["state"]) for s in body["steps"]] == [
        ("1-add", "SUCCESS"),
        ("2-explode", "DEAD"),
    ]
    assert body["steps"][1]["error"] == "ValueError: api"
    assert body["steps"][1]["depends_on"] == ["1-add"]
    missing = await client.get("/api/v1/workflows/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_cancel_a_workflow_over_http(
    client: httpx.AsyncClient, start_worker: StartWorker, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    await start_worker()
    handle = await (tasks.gated_value.si(1, str(started), str(gate)) | tasks.add.s(1)).kiq()
    await eventually(started.exists, what="first step running")
    response = await client.post(f"/api/v1/workflows/{handle.workflow_id}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "CANCELLED"
    assert response.json()["steps"][1]["state"] == "CANCELLED"

    async def all_cancelled() -> bool:
        body = (await client.get(f"/api/v1/workflows/{handle.workflow_id}")).json()
        return [s["state"] for s in body["steps"]] == ["CANCELLED", "CANCELLED"]

    await eventually(all_cancelled, what="running step cancelled")
    assert (await client.post(f"/api/v1/workflows/{handle.workflow_id}/cancel")).status_code == 200
    assert (await client.post("/api/v1/workflows/nope/cancel")).status_code == 404


async def test_workflows_are_listed_newest_first_by_state_and_page(
    client: httpx.AsyncClient, start_worker: StartWorker, tmp_path: Path
) -> None:
    await start_worker()
    ok = await chain(tasks.add.s(1, 1), tasks.add.s(2)).kiq()
    await ok.wait_result(timeout=60)
    failed = await chain(tasks.add.s(1, 1), tasks.explode.s("list")).kiq()
    await failed.wait_result(timeout=60)
    started, gate = tmp_path / "started", tmp_path / "gate"
    running = await (tasks.gated_value.si(1, str(started), str(gate)) | tasks.add.s(1)).kiq()
    await eventually(started.exists, what="first step running")

    listed = (await client.get("/api/v1/workflows")).json()
    ids = [running.workflow_id, failed.workflow_id, ok.workflow_id]
    assert [w["workflow_id"] for w in listed["items"]] == ids
    assert listed["next_cursor"] is None
    first = listed["items"][0]
    assert (first["kind"], first["state"], first["steps"], first["steps_ended"]) == (
        "chain",
        "RUNNING",
        2,
        0,
    )
    assert listed["items"][1]["failed_step"] == "2-explode"
    assert listed["items"][2]["finished_at"] >= listed["items"][2]["created_at"]

    async def of(state: str) -> list[str]:
        page = (await client.get("/api/v1/workflows", params={"state": state})).json()
        return [w["workflow_id"] for w in page["items"]]

    assert await of("RUNNING") == [running.workflow_id]
    assert await of("FAILURE") == [failed.workflow_id]
    assert await of("SUCCESS") == [ok.workflow_id]
    assert await of("CANCELLED") == []

    walked: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/workflows", params=params)).json()
        walked += [w["workflow_id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == ids

    gate.write_text("go")
    assert (await running.wait_result(timeout=60)).return_value == 2
    assert await of("RUNNING") == []
    assert await of("SUCCESS") == [running.workflow_id, ok.workflow_id]
    bad = await client.get("/api/v1/workflows", params={"state": "NOPE"})
    assert bad.status_code == 422
    assert (await client.get("/api/v1/workflows", params={"cursor": "!!"})).status_code == 422
