"""The fetch loop's fills against a real JetStream: every lane asked in one round trip, and
nothing kept when one of them fails."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import ConsumerGoneError
from src.engine.core.priority import LANES
from src.engine.worker.pulls import pull_now
from tests.support import tasks
from tests.support.processes import eventually


@pytest.mark.settings(ack_wait_s=120)  # redelivered without a hand-back only after this
async def test_a_fill_hands_back_what_it_fetched_when_one_lane_fails(
    broker: JetStreamBroker, js: JetStreamContext, settings: Settings
) -> None:
    """One fill asks every lane at once; when one lane's pull fails (its consumer was deleted),
    the tasks the other lanes brought are handed back at once, not held until `ack_wait`."""
    fetching = broker.fetching
    subs = {lane: await fetching._subscribe("default", lane) for lane in LANES}
    sent = {(await tasks.echo.kiq(i)).task_id for i in range(3)}
    await js.delete_consumer(settings.stream, broker.layout.consumer("default", "low"))
    with pytest.raises(ConsumerGoneError):
        await fetching._fill(subs, {}, 10)

    again: list[Msg] = []

    async def delivered_again() -> bool:
        again.extend(await pull_now(broker.nc, subs["normal"], 10, 1.0))
        return len(again) >= len(sent)

    await eventually(delivered_again, timeout_s=30, what="the fetched tasks back in the queue")
    assert {m.headers["Nats-Msg-Id"].split(":")[0] for m in again if m.headers} == sent
    assert all(m.metadata.num_delivered == 2 for m in again), "handed back, then delivered anew"
    for msg in again:
        await msg.ack()
