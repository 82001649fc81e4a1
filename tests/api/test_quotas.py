"""What one key may ask: submissions per second (429 with Retry-After beyond it), and only
queues some worker is meant to consume."""

from __future__ import annotations

import httpx
import pytest

from src.api.app import create_app
from src.config import ConfigError, Settings, load_settings
from src.engine.broker import JetStreamBroker
from tests.api.conftest import api_client
from tests.conftest import ADMIN_KEY, SUBMIT_KEY

TYPED = "tests.support.tasks:typed"
BODY = {"task": TYPED, "kwargs": {"name": "x"}}


@pytest.mark.settings(api_submit_rate="5/h")
async def test_a_key_over_its_submit_rate_gets_429_with_retry_after(settings: Settings) -> None:
    async with api_client(settings, key=SUBMIT_KEY) as client:
        accepted = [await client.post("/api/v1/tasks", json=BODY) for _ in range(5)]
        assert [r.status_code for r in accepted] == [202] * 5
        refused = await client.post("/api/v1/tasks", json=BODY)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert "TASKJET_API_SUBMIT_RATE" in refused.json()["error"]["message"]
        assert int(refused.headers["Retry-After"]) >= 700, "one submission an hour / 5 returns"
        process = await client.post("/process", json={"data": {}})
        assert process.status_code == 429, "every submit route counts"
    async with api_client(settings, key=ADMIN_KEY) as other:
        assert (await other.post("/api/v1/tasks", json=BODY)).status_code == 202, "per key"


@pytest.mark.settings(api_submit_rate="off")
async def test_the_submit_rate_can_be_turned_off(settings: Settings) -> None:
    async with api_client(settings, key=SUBMIT_KEY) as client:
        codes = {(await client.post("/api/v1/tasks", json=BODY)).status_code for _ in range(30)}
    assert codes == {202}


async def test_tasks_go_only_to_queues_a_worker_is_meant_to_consume(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.post("/api/v1/tasks", json={**BODY, "options": {"queue": "nowhere"}})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "options", "queue"]
    assert "'nowhere'" in refused.json()["error"]["message"]
    for queue in ("default", "email"):  # the default one, and one a registered task names
        ok = await client.post("/api/v1/tasks", json={**BODY, "options": {"queue": queue}})
        assert ok.status_code == 202, ok.text


@pytest.mark.settings(api_queues="reports,billing")
async def test_the_allowed_queues_can_be_set(settings: Settings) -> None:
    async with api_client(settings) as client:
        email = await client.post("/api/v1/tasks", json={**BODY, "options": {"queue": "email"}})
        assert email.status_code == 422
        assert "billing, reports" in email.json()["error"]["message"]
        reports = await client.post("/api/v1/tasks", json={**BODY, "options": {"queue": "reports"}})
        assert reports.status_code == 202


def test_a_server_with_a_bad_task_label_does_not_start() -> None:
    broker = JetStreamBroker()

    @broker.task(task_name="early", ack_type="when_received")
    async def early() -> None: ...

    with pytest.raises(ConfigError, match="task early: ack_type"):
        create_app(load_settings(auth="disabled"), broker=broker)
