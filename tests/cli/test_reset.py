"""`taskjet reset`: shows without --confirm and changes nothing; with it, deletes taskjet's
streams and every key under the prefix, and nothing outside it; refuses while workers live."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.scheduling.schedules import Schedule
from tests.cli.conftest import Taskjet, json_lines
from tests.conftest import StartWorker
from tests.support import tasks


async def _snapshot(broker: JetStreamBroker, js: JetStreamContext) -> dict[str, Any]:
    """Keys of this test (other tests share the server), and its streams."""
    redis = broker.results.redis
    keys = sorted([k async for k in redis.scan_iter(match=f"{broker.layout.redis_prefix}*")])
    streams = {}
    for name in broker.layout.streams:
        try:
            info = await js.stream_info(name)
        except NotFoundError:  # made on first use (the artifacts' object store)
            continue
        streams[name] = (info.state.messages, info.state.last_seq)
    return {"keys": keys, "values": [await redis.dump(k) for k in keys], "streams": streams}


async def test_reset_shows_then_deletes_only_what_is_taskjet_s(
    broker: JetStreamBroker,
    settings: Settings,
    js: JetStreamContext,
    start_worker: StartWorker,
    taskjet: Taskjet,
) -> None:
    redis = broker.results.redis
    prefix = settings.redis_prefix
    outside = [b"other-app:keep", f"{prefix}x:keep".encode(), prefix.encode()]
    for key in outside:
        await redis.set(key, b"mine")
    await js.add_stream(name=f"OTHER{prefix}", subjects=[f"other{prefix}.>"])
    await broker.schedules.add(Schedule(id="s1", task="tests.support.tasks:echo", interval=60))
    await broker.queues.pause("email")
    for i in range(3):
        await tasks.echo.kiq(i)
    await tasks.echo.kicker().with_labels(delay=600).kiq("later")

    before = await _snapshot(broker, js)
    code, out = await taskjet("reset")
    assert code == 0, out
    assert settings.stream in out
    assert f"Redis keys under {prefix}: " in out
    assert "nothing changed: add --confirm to delete all of it" in out
    code, out = await taskjet("reset", "--json")
    (survey,) = json_lines(out)
    assert survey["deleted"] is False
    assert survey["keys"]["task"] == 4
    assert survey["keys"]["schedules"] == 1
    assert survey["keys"]["paused-queues"] == 1
    counts = {s["name"]: s["messages"] for s in survey["streams"]}
    assert counts[settings.stream] == 3
    assert counts[broker.layout.schedules_stream] == 1
    assert await _snapshot(broker, js) == before, "looking changed nothing"

    worker = await start_worker()
    await (await tasks.small_artifacts.kiq()).wait_result(timeout=60)  # files: a bucket too
    await js.stream_info(f"OBJ_{broker.layout.artifacts_bucket}")
    code, out = await taskjet("reset", "--confirm")
    assert code == 2
    assert "worker(s) alive" in out
    assert "add --force" in out
    await worker.stop()

    code, out = await taskjet("reset", "--confirm")
    assert code == 0, out
    assert "deleted: every stream and key above" in out
    assert [k async for k in redis.scan_iter(match=f"{prefix}:*")] == []
    assert [await redis.get(key) for key in outside] == [b"mine"] * 3, "outside keys survive"
    for name in broker.layout.streams:
        try:
            await js.stream_info(name)
        except NotFoundError:
            continue
        raise AssertionError(f"stream {name} is still there")
    assert (await js.stream_info(f"OTHER{prefix}")).config.name == f"OTHER{prefix}"
    await js.delete_stream(f"OTHER{prefix}")
    await redis.delete(*outside)

    code, out = await taskjet("reset")
    assert code == 0, out
    assert "nothing to delete" in out


async def test_force_resets_while_workers_are_alive(
    broker: JetStreamBroker, js: JetStreamContext, start_worker: StartWorker, taskjet: Taskjet
) -> None:
    await start_worker()
    code, out = await taskjet("reset", "--confirm", "--force")
    assert code == 0, out
    assert "deleted: every stream and key above" in out
    for name in broker.layout.streams:
        with pytest.raises(NotFoundError):
            await js.stream_info(name)
