"""`POST /api/v1/tasks` answers the same whichever route takes it: the lean one (a JSON body) or
the FastAPI one (anything else, passed on untouched)."""

from __future__ import annotations

from src.config import Settings
from tests.api.conftest import api_client

JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}


async def test_a_refused_body_is_answered_as_fastapi_answers_it(settings: Settings) -> None:
    not_an_object = {
        "loc": ["body"],
        "msg": "Input should be a valid dictionary or object to extract fields from",
        "type": "model_attributes_type",
    }
    async with api_client(settings) as client:
        for body, detail in (
            (b"[1]", not_an_object),
            (b"null", not_an_object),
            (
                b'{"task": 1}',
                {
                    "loc": ["body", "task"],
                    "msg": "Input should be a valid string",
                    "type": "string_type",
                },
            ),
        ):
            lean = await client.post("/api/v1/tasks", content=body, headers=JSON)
            assert lean.status_code == 422
            assert lean.json()["error"]["details"] == [detail]
        # Text is not JSON to FastAPI: passed on, it is validated as the bytes it is.
        passed_on = await client.post("/api/v1/tasks", content=b"[1]", headers=TEXT)
        assert passed_on.json()["error"]["details"] == [not_an_object]


async def test_an_empty_body_is_passed_on(settings: Settings) -> None:
    async with api_client(settings) as client:
        for body in (b"", b"  "):
            answer = await client.post("/api/v1/tasks", content=body, headers=JSON)
            assert answer.status_code == 422
            details = answer.json()["error"]["details"]
            assert details[0]["loc"][0] == "body"


async def test_an_accepted_task_is_answered_as_documented(settings: Settings) -> None:
    async with api_client(settings) as client:
        body = {"task": "src.tasks.example:example_task", "args": [{"n": 1}]}
        answer = await client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 202
    data = answer.json()
    base = f"/api/v1/tasks/{data['task_id']}"
    assert data == {
        "task_id": data["task_id"],
        "state": "PENDING",
        "links": {
            "self": base,
            "events": f"{base}/events",
            "websocket": f"{base}/ws",
            "cancel": f"{base}/cancel",
        },
    }
    assert answer.headers["location"] == base
    assert answer.headers["content-type"] == "application/json"
