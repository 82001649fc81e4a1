"""A three-node NATS cluster with streams of three replicas, two worker processes and an API
server, while nodes fail: the stream leader killed while tasks are sent and run, a rolling
restart, a node frozen past the lease. Each test sends 2,000 tasks and asserts that none is
lost, every result is stored, duplicate runs stay within what the README promises (no more
than the tasks in flight when the fault hit), and the API never answers 500."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from src.config import Settings
from src.embedded import EmbeddedServers, NatsCluster
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import NoPeersYetError
from src.engine.sending.kicker import TaskHandle
from src.tasks.broker import broker as app_broker
from tests.conftest import ADMIN_KEY, isolated_settings, settings_env
from tests.support import tasks
from tests.support.load import Tally, poll_api, send, settle
from tests.support.processes import Proc, eventually, spawn, spawn_server, wait_healthy, worker_args

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]

TASKS = 2000
IN_FLIGHT = 200
CAPACITY = 100  # per worker process (`--max-async-tasks`)
WORKERS = 2


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    servers = EmbeddedServers.create(tmp_path / "servers", persistent=False, cluster=True)
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def cluster_settings(cluster: EmbeddedServers, request: pytest.FixtureRequest) -> Settings:
    """R3 streams; a test's `settings` mark changes these (None: the setting's default)."""
    chosen: dict[str, Any] = {
        "stream_replicas": 3,
        "ack_wait_s": 5.0,
        "publish_retry_s": 30.0,
        "connect_timeout_s": 3.0,
    }
    if (mark := request.node.get_closest_marker("settings")) is not None:
        chosen.update(mark.kwargs)
    return isolated_settings(cluster, **{k: v for k, v in chosen.items() if v is not None})


@pytest.fixture
async def running(
    cluster_settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[JetStreamBroker, str]]:
    """The app's broker as a client, two worker processes, and an API server process."""
    app_broker.configure(cluster_settings)
    await app_broker.startup()
    env = settings_env(cluster_settings)
    procs: list[Proc] = [
        spawn(worker_args(workers=WORKERS), env, tmp_path / "workers.log"),
    ]
    server, base = spawn_server(env, tmp_path / "server.log")
    procs.append(server)
    try:
        await wait_healthy(server, base)
        yield app_broker, base
    finally:
        for proc in procs:
            await proc.stop()
        await app_broker.shutdown()


def _nats(cluster: EmbeddedServers) -> NatsCluster:
    assert isinstance(cluster.nats, NatsCluster)
    return cluster.nats


async def _leader(broker: JetStreamBroker, stream: str) -> str:
    info = await broker.js.stream_info(stream)
    assert info.cluster is not None
    assert info.cluster.leader
    return str(info.cluster.leader)


async def _run_through(
    broker: JetStreamBroker, base: str, fault: Callable[[], Awaitable[None]]
) -> Tally:
    """Send the tasks, strike with `fault` once a quarter of them are out, settle, tally."""
    keys: list[str] = []
    handles: list[Any] = []
    stop = asyncio.Event()
    tally = Tally()
    watcher = asyncio.ensure_future(
        poll_api(base, {"Authorization": f"Bearer {ADMIN_KEY}"}, tally, stop)
    )
    sending = asyncio.ensure_future(send(TASKS, IN_FLIGHT, keys, handles))
    await eventually(
        lambda: len(handles) >= TASKS // 4 or sending.done(), what="a quarter of the tasks sent"
    )
    await fault()
    await sending
    settled = await settle(broker, keys, handles, timeout_s=240)
    stop.set()
    await watcher
    settled.api_answers = tally.api_answers
    return settled


def _assert_promises(tally: Tally, sent: int = TASKS) -> None:
    report = tally.report()
    print(report)  # the figures, for the run's log
    assert tally.sent == sent, report
    assert len(tally.lost) == 0, report
    assert tally.results == sent, report
    assert tally.duplicates <= WORKERS * CAPACITY, report
    assert 500 not in tally.api_answers, report
    assert tally.api_answers[200] > 0, report


async def test_the_stream_leader_killed_while_tasks_are_sent_and_run(
    cluster: EmbeddedServers, cluster_settings: Settings, running: tuple[JetStreamBroker, str]
) -> None:
    broker, base = running
    nats = _nats(cluster)

    async def kill_leader() -> None:
        leader = await _leader(broker, cluster_settings.stream)
        nats.node_named(leader).kill()

    tally = await _run_through(broker, base, kill_leader)
    _assert_promises(tally)


async def test_a_rolling_restart_of_every_node(
    cluster: EmbeddedServers, cluster_settings: Settings, running: tuple[JetStreamBroker, str]
) -> None:
    broker, base = running
    nats = _nats(cluster)

    async def restart_one_by_one() -> None:
        for node in nats.nodes:
            await asyncio.to_thread(node.restart)
            await asyncio.to_thread(nats.wait_healthy, 60)

    tally = await _run_through(broker, base, restart_one_by_one)
    _assert_promises(tally)


async def test_a_node_frozen_past_the_lease(
    cluster: EmbeddedServers, cluster_settings: Settings, running: tuple[JetStreamBroker, str]
) -> None:
    broker, base = running
    nats = _nats(cluster)

    async def freeze_leader() -> None:
        node = nats.node_named(await _leader(broker, cluster_settings.stream))
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(cluster_settings.ack_wait_s * 2)  # the fault itself: past the lease
        finally:
            node.process.send_signal(signal.SIGCONT)

    tally = await _run_through(broker, base, freeze_leader)
    _assert_promises(tally)


@pytest.mark.settings(publish_retry_s=None, worker_modules="src.tasks.example tests.support.tasks")
async def test_every_way_of_sending_rides_out_a_leader_election_at_the_default_retry(
    cluster: EmbeddedServers, cluster_settings: Settings, running: tuple[JetStreamBroker, str]
) -> None:
    """`kiq()`, `kiq_many()` and `POST /api/v1/tasks` all sending while the stream leader is
    killed, with `TASKJET_PUBLISH_RETRY_S` at its default: no caller sees an error, no task is
    lost, and once a leader is back the API answers 200 again (never a 500 meanwhile)."""
    assert cluster_settings.publish_retry_s == 10.0
    broker, base = running
    nats = _nats(cluster)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    keys: list[str] = []
    handles: list[Any] = []
    posted: list[int] = []

    async def by_kiq_many(batches: int) -> None:
        for _ in range(batches):
            batch = [uuid.uuid4().hex for _ in range(50)]
            handles.extend(await tasks.count.kiq_many([(key,) for key in batch]))
            keys.extend(batch)

    async def by_http(client: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            key = uuid.uuid4().hex
            body = {"task": "tests.support.tasks:counted", "kwargs": {"key": key}}
            answer = await client.post("/api/v1/tasks", json=body)
            posted.append(answer.status_code)
            if answer.status_code == 202:
                task_id = answer.json()["task_id"]
                keys.append(key)
                handles.append(TaskHandle(task_id, broker.result_backend))

    stop = asyncio.Event()
    tally = Tally()
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60) as client:
        watcher = asyncio.ensure_future(poll_api(base, auth, tally, stop))
        sending = asyncio.gather(
            send(600, IN_FLIGHT, keys, handles), by_kiq_many(8), by_http(client, 300)
        )
        await eventually(lambda: len(handles) >= 300 or sending.done(), what="300 tasks sent")
        nats.node_named(await _leader(broker, cluster_settings.stream)).kill()
        await sending  # raises if any kiq() or kiq_many() failed
        assert set(posted) == {202}, f"HTTP submits answered {Counter(posted)}"
        settled = await settle(broker, keys, handles, timeout_s=240)
        stop.set()
        await watcher
        for path in ("/health", "/api/v1/queues/status"):
            assert (await client.get(path)).status_code == 200, path
    settled.api_answers = tally.api_answers
    assert settled.sent == 600 + 8 * 50 + 300
    assert set(settled.api_answers) <= {200, 503}, settled.report()
    _assert_promises(settled, sent=1300)


@pytest.mark.settings(stream_replicas=5, publish_retry_s=1.0)
async def test_more_stream_replicas_than_nodes_is_asked_again_then_refused_by_name(
    cluster: EmbeddedServers, cluster_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """ "No suitable peers for placement" is what a cluster still forming answers too: start-up
    asks again within its retry window (so a fresh cluster is waited for), then says why."""
    app_broker.configure(cluster_settings)
    with pytest.raises(NoPeersYetError, match="fewer nodes than TASKJET_STREAM_REPLICAS"):
        await app_broker.startup()
    assert "provisioning JetStream: no answer yet" in caplog.text
