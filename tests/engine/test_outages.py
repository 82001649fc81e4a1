"""NATS and Redis restarts mid-run: workers and clients reconnect by themselves, nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from taskiq.exceptions import TaskiqResultTimeoutError

from src.config import Settings
from src.embedded import EmbeddedServers, NatsServer
from src.engine.broker import JetStreamBroker
from src.tasks.broker import broker as app_broker
from tests.conftest import isolated_settings, settings_env
from tests.support import tasks
from tests.support.processes import Proc, eventually, spawn, worker_args

pytestmark = pytest.mark.faults


@pytest.fixture
def outage_settings(private_servers: EmbeddedServers) -> Settings:
    return isolated_settings(private_servers, ack_wait_s=2.0, redelivery_delay_s=0.3)


@pytest.fixture
async def client(outage_settings: Settings) -> AsyncIterator[JetStreamBroker]:
    app_broker.configure(outage_settings)
    await app_broker.startup()
    yield app_broker
    await app_broker.shutdown()


@pytest.fixture
async def worker(outage_settings: Settings, tmp_path: Path) -> AsyncIterator[Proc]:
    proc = spawn(worker_args(workers=1), settings_env(outage_settings), tmp_path / "worker.log")
    yield proc
    await proc.stop()


async def _done_count(broker: JetStreamBroker, keys: list[str]) -> int:
    return sum([int(await broker.results.redis.get(f"test-done:{k}") or 0) for k in keys])


async def test_nats_restart_mid_run_loses_nothing(
    private_servers: EmbeddedServers, client: JetStreamBroker, worker: Proc
) -> None:
    keys = [uuid.uuid4().hex for _ in range(150)]
    handles = [await tasks.slow.kiq(k, 0.02) for k in keys]
    await eventually(lambda: _done_count(client, keys[:20]), what="work under way")
    private_servers.nats.restart()
    more = [uuid.uuid4().hex for _ in range(20)]

    async def publish_again() -> bool:
        try:
            handles.extend([await tasks.slow.kiq(k, 0.02) for k in more])
        except Exception:
            return False
        return True

    await eventually(publish_again, what="client publishes after NATS restart")
    results = await asyncio.gather(*(h.wait_result(timeout=120) for h in handles))
    assert [r.return_value for r in results] == keys + more
    assert worker.process.poll() is None, "the worker reconnected by itself"


async def test_redis_outage_mid_run_every_result_lands(
    private_servers: EmbeddedServers, client: JetStreamBroker, worker: Proc
) -> None:
    keys = [uuid.uuid4().hex for _ in range(60)]
    first = [await tasks.echo.kiq(k) for k in keys[:30]]
    await asyncio.gather(*(h.wait_result(timeout=60) for h in first))
    private_servers.redis.stop()
    second = [await tasks.echo.kiq(k) for k in keys[30:]]  # publishing needs only NATS
    await eventually(
        lambda: "cannot record" in worker.output(),
        what="worker noticed task starts cannot be recorded (and handed them back)",
    )
    # A caller waiting while Redis is down keeps waiting (until its own timeout), not failing.
    with pytest.raises(TaskiqResultTimeoutError):
        await second[0].wait_result(timeout=0.5)
    private_servers.redis.start()
    results = await asyncio.gather(*(h.wait_result(timeout=120) for h in first + second))
    assert [r.return_value for r in results] == keys
    assert worker.process.poll() is None, "the worker reconnected by itself"


async def test_a_result_that_cannot_be_saved_mid_run_is_never_acked_and_lands_later(
    private_servers: EmbeddedServers,
    client: JetStreamBroker,
    worker: Proc,
    outage_settings: Settings,
    tmp_path: Path,
) -> None:
    """Redis goes away while the task runs: its result cannot be saved, so its message is not
    acked (it stays in the stream) and the task's result lands once Redis is back."""
    started, gate = tmp_path / "started", tmp_path / "gate"
    handle = await tasks.file_gated.kiq(str(started), str(gate))
    await eventually(started.exists, what="task running")
    private_servers.redis.stop()
    gate.touch()
    await eventually(
        lambda: "outcome not saved" in worker.output(),
        what="the worker could not save the outcome",
    )
    info = await client.js.stream_info(outage_settings.stream)
    assert info.state.messages == 1, "the task's message is still queued, not acked"
    private_servers.redis.start()
    result = await handle.wait_result(timeout=120)
    assert result.return_value == "through"

    async def queue_empty() -> bool:
        return (await client.js.stream_info(outage_settings.stream)).state.messages == 0

    await eventually(queue_empty, what="acked once the result was saved")


async def test_a_nats_server_frozen_past_the_worker_s_probes_then_thawed(
    private_servers: EmbeddedServers, client: JetStreamBroker, worker: Proc
) -> None:
    """NATS stops answering (a frozen process, a stalled VM) for longer than the worker's
    round-trip probe waits, then answers again: the late answers must not leave the worker's
    connection deaf, so the tasks sent after the thaw all run."""
    first = [uuid.uuid4().hex for _ in range(5)]
    before = await asyncio.gather(
        *[(await tasks.echo.kiq(k)).wait_result(timeout=60) for k in first]
    )
    assert [r.return_value for r in before] == first
    nats = private_servers.nats
    assert isinstance(nats, NatsServer)
    assert nats.process is not None
    nats.process.send_signal(signal.SIGSTOP)
    try:
        await eventually(
            lambda: "NATS round trip" in worker.output(),
            what="the worker's probe of the frozen server ran out",
            timeout_s=60,
        )
    finally:
        nats.process.send_signal(signal.SIGCONT)
    after = [uuid.uuid4().hex for _ in range(20)]
    handles = [await tasks.echo.kiq(k) for k in after]
    results = await asyncio.gather(*(h.wait_result(timeout=60) for h in handles))
    assert [r.return_value for r in results] == after
    # The connection came through whole: no read loop died, nothing had to reconnect.
    assert "encountered error" not in worker.output()
    assert "NATS disconnected" not in worker.output()
