"""The schedules API on real NATS and Redis: create, list, pause, resume, delete; what cannot
run is refused with the field named, and what Redis holds that cannot run stops nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from src.api.app import create_app
from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.tasks.broker import broker  # the app's: started by `api_client`
from tests.api.conftest import api_client, bearer
from tests.conftest import ADMIN_KEY, StartWorker
from tests.engine.scheduling.helpers import PLANTED, TICK_TASK, new_key, plant, ran_ticks
from tests.support.processes import eventually


async def test_dynamic_schedule_crud(settings: Settings) -> None:
    async with api_client(settings) as client:
        examples = {
            "every-5-min": "*/5 * * * *",
            "hourly": "0 * * * *",
            "daily-9": "0 9 * * *",
            "mondays-8": "0 8 * * 1",
        }
        for schedule_id, cron in examples.items():
            response = await client.post(
                "/api/v1/schedules",
                json={
                    "id": schedule_id,
                    "task": "add",
                    "cron": cron,
                    "args": [1, 2],
                    "timezone": "Europe/Berlin",
                },
            )
            assert response.status_code == 201, response.text
            body = response.json()
            assert body["kwargs"] == {"a": 1.0, "b": 2.0}
            assert body["next_run"] > time.time()
            assert body["next_run"] % 60 == 0, "a five-field tick starts its minute"
        monday = datetime.fromtimestamp(
            (await client.get("/api/v1/schedules/mondays-8")).json()["next_run"], UTC
        )
        local = monday.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.weekday(), local.hour, local.minute, local.second) == (0, 8, 0, 0)

        duplicate = await client.post(
            "/api/v1/schedules",
            json={"id": "hourly", "task": "add", "interval": 60, "args": [1, 2]},
        )
        assert duplicate.status_code == 409
        paused = (await client.post("/api/v1/schedules/hourly/pause")).json()
        assert paused["paused"] is True
        resumed = (await client.post("/api/v1/schedules/hourly/resume")).json()
        assert resumed["paused"] is False
        assert (await client.delete("/api/v1/schedules/hourly")).status_code == 204
        assert (await client.get("/api/v1/schedules/hourly")).status_code == 404
        assert (await client.delete("/api/v1/schedules/hourly")).status_code == 404
        ids = {s["id"] for s in (await client.get("/api/v1/schedules")).json()["items"]}
        assert ids == {"every-5-min", "daily-9", "mondays-8"}
    async with api_client(settings) as client:  # kept across restarts (in Redis)
        ids = {s["id"] for s in (await client.get("/api/v1/schedules")).json()["items"]}
        assert ids == {"every-5-min", "daily-9", "mondays-8"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "is not valid"),
        ({"cron": "every day"}, "cron", "has 2 fields"),
        (
            {"cron": "0 0 30 2 *"},
            "cron",
            "never fires: Day(s) [30] can never occur in month(s) [2]",
        ),
        ({"cron": "0 0 30 2 *", "paused": True}, "cron", "never fires"),
        ({"cron": "0 0 31 4 *", "timezone": "Europe/Berlin"}, "cron", "never fires"),
        ({"cron": "R * * * *"}, "cron", "`R` (random) and `H` (hashed) values are not supported"),
        ({"cron": "H 9 * * *"}, "cron", "`R` (random) and `H` (hashed) values are not supported"),
        ({"cron": "0 0 1 1 * 0 2030"}, "cron", "has 7 fields"),
        ({}, "", "give exactly one of `cron` and `interval`"),
        ({"cron": "* * * * *", "interval": 5}, "", "give exactly one"),
        ({"interval": 0.5}, "interval", "greater than or equal to 1"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ],
    ids=[
        "minute-61",
        "words",
        "feb-30",
        "feb-30-paused",
        "april-31",
        "random",
        "hashed",
        "year-field",
        "no-rule",
        "both-rules",
        "interval-too-short",
        "zone",
    ],
)
async def test_bad_schedules_are_422_naming_the_field(
    settings: Settings, body: dict[str, Any], field: str, words: str
) -> None:
    async with api_client(settings) as client:
        response = await client.post(
            "/api/v1/schedules", json={"task": "add", "args": [1, 2], **body}
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert words in " ".join([error["message"], *(d["msg"] for d in error["details"])])
        assert [d["loc"] for d in error["details"]] == [["body", field] if field else ["body"]]
        if field == "cron":
            assert f"cron: Value error, cron {body['cron']!r}" in error["message"]
        stored = (await client.get("/api/v1/schedules")).json()
        assert stored == {"items": [], "invalid": []}, "nothing stored, not even as invalid"


async def test_bad_arguments_are_422(settings: Settings) -> None:
    async with api_client(settings) as client:
        body = {"task": "add", "cron": "* * * * *", "args": ["x", 2]}
        response = await client.post("/api/v1/schedules", json=body)
        assert response.status_code == 422, response.text


async def test_schedule_for_unknown_task_is_404(settings: Settings) -> None:
    async with api_client(settings) as client:
        response = await client.post("/api/v1/schedules", json={"task": "nope", "interval": 10})
        assert response.status_code == 404


async def test_a_stored_bad_schedule_cannot_be_resumed_only_deleted(settings: Settings) -> None:
    """Made paused by an older version that let `0 0 30 2 *` through: resuming it is refused,
    and what Redis holds is left as it was until it is deleted."""
    stored = '{"id": "feb-30", "task": "add", "cron": "0 0 30 2 *", "paused": true}'
    async with api_client(settings) as client:
        await plant(broker, {"feb-30": stored})
        for action in ("resume", "pause"):
            response = await client.post(f"/api/v1/schedules/feb-30/{action}")
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert "never fires" in error["message"]
            assert [d["loc"] for d in error["details"]] == [["stored", "cron"]]
        assert (await client.get("/api/v1/schedules/feb-30")).status_code == 422
        raw = await broker.results.redis.hget(broker.layout.schedules_key, "feb-30")
        assert raw.decode() == stored
        listed = (await client.get("/api/v1/schedules")).json()
        assert listed["items"] == []
        (invalid,) = listed["invalid"]
        assert invalid["id"] == "feb-30"
        assert [e["loc"] for e in invalid["errors"]] == [["cron"]]
        assert (await client.delete("/api/v1/schedules/feb-30")).status_code == 204
        assert (await client.get("/api/v1/schedules")).json() == {"items": [], "invalid": []}


async def test_garbage_in_redis_stops_neither_the_listing_nor_the_other_schedules(
    settings: Settings, start_worker: StartWorker
) -> None:
    """Bad JSON and impossible crons planted in the hash: the listing answers 200 and shows
    them apart; a good schedule fires from the server's ticker and a worker's; each process
    logs each bad one once."""
    worker = await start_worker()
    key = new_key()
    async with api_client(settings) as client:
        await plant(broker, PLANTED)
        body = {"id": "good", "task": TICK_TASK, "interval": 1, "kwargs": {"key": key}}
        created = await client.post("/api/v1/schedules", json=body)
        assert created.status_code == 201, created.text

        async def four_ticks() -> dict[float, int] | None:
            ticks = await ran_ticks(broker, key)
            return ticks if len(ticks) >= 4 else None

        ticks = await eventually(four_ticks, timeout_s=40, what="4 ticks of the good schedule")
        assert all(count == 1 for count in ticks.values()), ticks
        listed = await client.get("/api/v1/schedules")
        assert listed.status_code == 200, listed.text
        assert [s["id"] for s in listed.json()["items"]] == ["good"]
        assert {s["id"] for s in listed.json()["invalid"]} == set(PLANTED)
        assert (await client.get("/api/v1/schedules/good")).json()["last_run"] is not None
    log = worker.output()
    for schedule_id in PLANTED:
        assert log.count(f"(delete it): {schedule_id}: ") == 1, log[-3000:]


async def test_a_schedule_can_be_changed_and_is_checked_as_on_create(settings: Settings) -> None:
    async with api_client(settings) as client:
        created = await client.post(
            "/api/v1/schedules",
            json={"id": "report", "task": "add", "cron": "0 9 * * *", "args": [1, 2]},
        )
        assert created.status_code == 201
        hourly = await client.patch(
            "/api/v1/schedules/report", json={"cron": "0 * * * *", "timezone": "Asia/Kolkata"}
        )
        assert hourly.status_code == 200, hourly.text
        body = hourly.json()
        assert (body["cron"], body["timezone"], body["kwargs"]) == (
            "0 * * * *",
            "Asia/Kolkata",
            {"a": 1.0, "b": 2.0},
        )
        every = await client.patch("/api/v1/schedules/report", json={"interval": 30})
        assert (every.json()["interval"], every.json()["cron"]) == (30.0, None)
        args = await client.patch("/api/v1/schedules/report", json={"kwargs": {"a": 5, "b": 6}})
        assert args.json()["kwargs"] == {"a": 5.0, "b": 6.0}

        for change, field in (
            ({"cron": "0 0 30 2 *"}, "cron"),
            ({"cron": "R * * * *"}, "cron"),
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"kwargs": {"a": "x", "b": 1}}, "a"),
            ({"colour": "red"}, "colour"),
        ):
            refused = await client.patch("/api/v1/schedules/report", json=change)
            assert refused.status_code == 422, (change, refused.text)
            assert field in str(refused.json()["error"]["details"]), (change, refused.text)
        kept = (await client.get("/api/v1/schedules/report")).json()
        assert (kept["interval"], kept["kwargs"]) == (30.0, {"a": 5.0, "b": 6.0}), "unchanged"
        missing = await client.patch("/api/v1/schedules/nope", json={"interval": 5})
        assert missing.status_code == 404


async def test_a_code_schedule_cannot_be_changed(settings: Settings) -> None:
    own = JetStreamBroker()  # not the app's broker: its schedule stays in this test

    @own.task(task_name="nightly-report", schedule=[{"cron": "0 3 * * *", "schedule_id": "n"}])
    async def nightly_report() -> None: ...

    app = create_app(settings, broker=own)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://taskjet", headers=bearer(ADMIN_KEY)
        ) as client:
            response = await client.patch("/api/v1/schedules/n", json={"interval": 5})
            assert response.status_code == 409
            assert "declared in code" in response.json()["error"]["message"]


async def test_run_now_runs_the_task_once_outside_its_cadence(
    settings: Settings, start_worker: StartWorker
) -> None:
    key = new_key()
    async with api_client(settings) as client:
        created = await client.post(
            "/api/v1/schedules",
            json={
                "id": "nightly",
                "task": TICK_TASK,
                "cron": "0 3 * * *",
                "kwargs": {"key": key},
                "paused": True,
            },
        )
        assert created.status_code == 201
        await start_worker()
        run = await client.post("/api/v1/schedules/nightly/run")
        assert run.status_code == 202, run.text
        task_id = run.json()["task_id"]
        assert run.json()["schedule_id"] == "nightly"

        async def finished() -> Any:
            body = (await client.get(f"/api/v1/tasks/{task_id}")).json()
            return body if body.get("state") == "SUCCESS" else None

        await eventually(finished, what="the run-now task ran")
        state = (await client.get("/api/v1/schedules/nightly")).json()
        assert state["last_task_id"] == task_id
        assert state["paused"] is True, "running now does not resume it"
        assert sum((await ran_ticks(broker, key)).values()) == 1
        assert (await client.post("/api/v1/schedules/nope/run")).status_code == 404
