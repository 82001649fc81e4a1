"""Input a careless or hostile client sends: deep JSON, non-finite numbers, far-off times, and
resume ids out of range are 422s with a clear message, never a 500 or a task that fails later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

EXAMPLE = "src.tasks.example:example_task"


def _nested_body(levels: int) -> bytes:
    """A submission whose JSON nests exactly `levels` deep (the body object is level 1)."""
    inner = levels - 2  # the body object and the `args` array
    data = '{"a":' * inner + "1" + "}" * inner
    return f'{{"task": "{EXAMPLE}", "args": [{data}]}}'.encode()


async def _post(client: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("levels", [50, 200, 300, 10_000])
async def test_deep_json_is_refused(client: httpx.AsyncClient, levels: int) -> None:
    response = await _post(client, "/api/v1/tasks", _nested_body(levels))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "JSON nested deeper than 32 levels"


async def test_json_up_to_the_depth_limit_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await _post(client, "/api/v1/tasks", _nested_body(32))).status_code == 202
    assert (await _post(client, "/api/v1/tasks", _nested_body(33))).status_code == 422


@pytest.mark.settings(api_max_json_depth=8)
async def test_the_depth_limit_is_a_setting(client: httpx.AsyncClient) -> None:
    assert (await _post(client, "/api/v1/tasks", _nested_body(8))).status_code == 202
    deep = await _post(client, "/process", b'{"data": ' + b'{"a":' * 8 + b"1" + b"}" * 9)
    assert deep.status_code == 422
    assert deep.json()["error"]["message"] == "JSON nested deeper than 8 levels"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
async def test_non_finite_numbers_are_refused(client: httpx.AsyncClient, number: str) -> None:
    for body in (
        f'{{"task": "{EXAMPLE}", "args": [{{"x": [{number}]}}]}}',
        f'{{"task": "add", "args": [{number}, 1]}}',
        f'{{"task": "add", "args": [1, 2], "options": {{"delay": {number}}}}}',
        f'{{"data": {{"x": {number}}}}}',
    ):
        path = "/process" if body.startswith('{"data"') else "/api/v1/tasks"
        response = await _post(client, path, body.encode())
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("text", ["NaN", "inf", "-Infinity"])
async def test_non_finite_numbers_spelt_as_strings_are_refused(
    client: httpx.AsyncClient, text: str
) -> None:
    as_argument = await client.post("/api/v1/tasks", json={"task": "add", "args": [text, 1]})
    assert as_argument.status_code == 422
    for option in ("delay", "timeout"):
        as_option = await client.post(
            "/api/v1/tasks", json={"task": "add", "args": [1, 2], "options": {option: text}}
        )
        assert as_option.status_code == 422, option


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    "eta",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        _in(367),
        1e20,
    ],
    ids=["year-9999", "year-9999-offset", "year-1", "before-1970", "367-days", "huge-number"],
)
async def test_eta_out_of_range_is_refused(client: httpx.AsyncClient, eta: Any) -> None:
    response = await client.post(
        "/api/v1/tasks", json={"task": "add", "args": [1, 2], "options": {"eta": eta}}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "eta",
    [_in(365), "2001-09-09T01:46:40Z", _in(2).replace("+00:00", "")],
    ids=["365-days", "past", "no-zone"],
)
async def test_eta_in_range_is_accepted(client: httpx.AsyncClient, eta: str) -> None:
    response = await client.post(
        "/api/v1/tasks", json={"task": "add", "args": [1, 2], "options": {"eta": eta}}
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "last_event_id", ["1" * 20, str(2**63), "-1", "abc", "1.5", "0x10"], ids=repr
)
async def test_last_event_id_out_of_range_is_refused(
    client: httpx.AsyncClient, last_event_id: str
) -> None:
    task_id = (await client.post("/api/v1/tasks", json={"task": "add", "args": [1, 2]})).json()[
        "task_id"
    ]
    for path in (f"/api/v1/tasks/{task_id}/events", "/sse/web-1"):
        response = await client.get(path, headers={"Last-Event-ID": last_event_id})
        assert response.status_code == 422, path
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"][0]["loc"] == ["header", "last-event-id"]
