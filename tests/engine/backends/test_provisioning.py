"""Stream and consumer provisioning: idempotent, updates applied and reported, conflicts refused."""

from __future__ import annotations

import logging

import pytest
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from src.config import Settings
from src.embedded import EmbeddedServers
from src.engine.backends import provisioning
from src.engine.broker import JetStreamBroker
from src.engine.core.layout import Layout
from tests.conftest import isolated_settings


async def _start_worker_broker(settings: Settings) -> JetStreamBroker:
    broker = JetStreamBroker(settings)
    broker.is_worker_process = True
    await broker.startup()
    return broker


async def test_provisioning_creates_the_expected_stream_and_consumer(
    settings: Settings, js: JetStreamContext
) -> None:
    broker = await _start_worker_broker(settings)
    await broker.shutdown()
    stream = (await js.stream_info(settings.stream)).config
    assert stream.retention == RetentionPolicy.WORK_QUEUE
    assert stream.storage == StorageType.FILE
    assert stream.discard == DiscardPolicy.NEW
    assert stream.duplicate_window == settings.duplicate_window_s
    assert stream.subjects == [f"{settings.subject_prefix}.tasks.>"]
    consumer = await js.consumer_info(
        settings.stream, Layout.from_settings(settings).consumer("default")
    )
    assert consumer.config.durable_name == "workers-default"
    assert consumer.config.ack_wait == settings.ack_wait_s
    assert consumer.config.max_ack_pending == settings.max_ack_pending


async def test_provisioning_is_idempotent_across_restarts(
    settings: Settings, js: JetStreamContext
) -> None:
    layout = Layout.from_settings(settings)
    for _ in range(3):
        broker = await _start_worker_broker(settings)
        await broker.shutdown()
    assert await provisioning.ensure_stream(js, provisioning.stream_config(settings, layout)) == {}
    for lane in ("high", "normal", "low"):
        config = provisioning.consumer_config(settings, layout, "default", lane)
        assert await provisioning.ensure_consumer(js, settings.stream, config) == {}
    names = sorted(c.name for c in await js.consumers_info(settings.stream))
    assert names == ["workers-default", "workers-default-high", "workers-default-low"]
    schedules = provisioning.schedules_stream_config(settings, layout)
    assert await provisioning.ensure_stream(js, schedules) == {}


@pytest.mark.faults
async def test_queued_tasks_survive_a_nats_restart(private_servers: EmbeddedServers) -> None:
    from tests.support import tasks

    settings = isolated_settings(private_servers)
    broker = JetStreamBroker(settings)
    await broker.startup()
    await broker.kick(broker.formatter.dumps(tasks.echo.kicker()._prepare_message("kept")))
    await broker.shutdown()
    private_servers.nats.restart()
    again = JetStreamBroker(settings)
    await again.startup()
    try:
        assert (await again.js.stream_info(settings.stream)).state.messages == 1
    finally:
        await again.shutdown()


async def test_changed_settings_are_applied_and_reported(
    servers: EmbeddedServers, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    first = isolated_settings(servers)
    broker = await _start_worker_broker(first)
    await broker.shutdown()
    changed = first.model_copy(update={"duplicate_window_s": 30.0, "ack_wait_s": 7.0})
    with caplog.at_level(logging.WARNING, logger="taskjet.provisioning"):
        broker = await _start_worker_broker(changed)
        await broker.shutdown()
    assert (await js.stream_info(first.stream)).config.duplicate_window == 30.0
    consumer = await js.consumer_info(first.stream, "workers-default")
    assert consumer.config.ack_wait == 7.0
    assert "updated stream" in caplog.text
    assert "duplicate_window: 120 -> 30" in caplog.text
    assert "updated consumer workers-default: ack_wait: 3 -> 7" in caplog.text


async def test_incompatible_existing_stream_is_refused(
    settings: Settings, js: JetStreamContext
) -> None:
    await js.add_stream(
        StreamConfig(
            name=settings.stream,
            subjects=[f"{settings.subject_prefix}.tasks.>"],
            retention=RetentionPolicy.LIMITS,
        )
    )
    broker = JetStreamBroker(settings)
    with pytest.raises(provisioning.ProvisioningError) as caught:
        await broker.startup()
    message = str(caught.value)
    assert f"stream {settings.stream} exists with a different configuration" in message
    assert "retention: 'limits' -> 'workqueue'" in message
    assert "TASKJET_STREAM" in message


async def test_old_nats_server_is_refused(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr(provisioning, "MIN_NATS_VERSION", (99, 0, 0))
    broker = JetStreamBroker(settings)
    with pytest.raises(provisioning.NatsVersionError, match=r"is too old: taskjet needs 99\.0\.0"):
        await broker.startup()


async def test_debian_nats_server_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    """The machine's packaged nats-server (2.9) is the real-world case of a too-old server."""
    import shutil

    system = shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    if system is None:
        pytest.fail("expected Debian's nats-server 2.9 on this machine for this check")
    from src.embedded import NatsServer, free_port

    class OldNats(NatsServer):
        def command(self) -> list[str]:
            return [system, "--addr", "127.0.0.1", "--port", str(self.port), "--jetstream",
                    "--store_dir", str(self.data_dir / "js")]  # fmt: skip

    server = OldNats(port=free_port(), data_dir=tmp_path / "old")  # type: ignore[operator]
    server.start()
    try:
        settings = Settings(nats_url=server.url)
        with pytest.raises(
            provisioning.NatsVersionError, match=r"nats-server 2\.9\.\d+ .* is too old"
        ):
            await JetStreamBroker(settings).startup()
    finally:
        server.stop()
