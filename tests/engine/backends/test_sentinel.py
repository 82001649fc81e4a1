"""Redis behind Sentinel: the primary killed mid-run, workers and clients go on with the new
primary, and no result that was acknowledged is lost."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from src.config import ConfigError, Settings
from src.embedded import EmbeddedServers, port_is_free, redis_server_binary
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.tasks.broker import broker as app_broker
from tests.conftest import isolated_settings, settings_env
from tests.support import tasks
from tests.support.processes import eventually, spawn, worker_args
from tests.support.sentinel import SentinelSet

pytestmark = pytest.mark.faults


@pytest.fixture
async def sentinels(tmp_path: Path) -> AsyncIterator[SentinelSet]:
    group = SentinelSet(tmp_path / "redis")
    try:
        await group.start()
        yield group
    finally:
        await group.stop()


async def test_the_primary_killed_mid_run_loses_no_acknowledged_result(
    servers: EmbeddedServers, sentinels: SentinelSet, tmp_path: Path
) -> None:
    settings = isolated_settings(
        servers, redis_url=sentinels.url, redis_wait_replicas=1, redis_timeout_s=2.0
    )
    app_broker.configure(settings)
    await app_broker.startup()
    worker = spawn(worker_args(workers=1), settings_env(settings), tmp_path / "worker.log")
    try:
        keys = [uuid.uuid4().hex for _ in range(300)]
        handles = []
        for number, key in enumerate(keys):
            if number == 100:
                sentinels.kill_primary()
            handles.append(await tasks.slow.kiq(key, 0.01))
        results = await asyncio.gather(*(h.wait_result(timeout=180) for h in handles))
        assert [r.return_value for r in results] == keys, "every task's result is stored"

        async def all_recorded() -> bool:
            records = await app_broker.records.get_many([h.task_id for h in handles])
            return all(r is not None and r.state is TaskState.SUCCESS for r in records)

        await eventually(all_recorded, timeout_s=60, what="every record says SUCCESS")
        assert worker.process.poll() is None, "the worker followed the new primary"
    finally:
        await worker.stop()
        await app_broker.shutdown()


def _cluster_port() -> int:
    """A free port a cluster node can take: at most 55535, with its bus port (+10000) free."""
    draw = random.Random()
    while True:
        port = draw.randint(20000, 55535)
        if port_is_free(port) and port_is_free(port + 10000):
            return port


async def test_a_redis_cluster_is_refused_at_startup(
    servers: EmbeddedServers, tmp_path: Path
) -> None:
    port = _cluster_port()
    node = spawn(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--cluster-enabled",
            "yes",
            "--dir",
            str(tmp_path),
        ],
        {},
        tmp_path / "cluster.log",
    )
    try:
        settings: Settings = isolated_settings(servers, redis_url=f"redis://127.0.0.1:{port}/0")

        async def up() -> bool:
            if node.process.poll() is not None:
                raise AssertionError(f"the cluster node exited:\n{node.output()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await eventually(up, what="cluster node up")
        with pytest.raises(ConfigError, match="Redis Cluster"):
            await JetStreamBroker(settings).startup()
    finally:
        await node.stop()
