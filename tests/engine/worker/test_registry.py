"""Live workers are listed through their index, never a key scan: a report shows until it
expires or is withdrawn, and other keys in the database cost nothing."""

from __future__ import annotations

import pytest

from src.engine.broker import JetStreamBroker
from src.engine.worker.inflight import InFlight
from src.engine.worker.registry import WorkerRegistry
from tests.support.processes import eventually


@pytest.mark.settings(worker_ttl_s=1.0)
async def test_reports_show_until_they_expire_or_are_withdrawn(broker: JetStreamBroker) -> None:
    redis = broker.results.redis
    await redis.set(f"{broker.layout.redis_prefix}:worker:stray", b"{}")  # no index entry
    first = WorkerRegistry(broker.redis, lambda: broker.layout, lambda: broker.settings)
    second = WorkerRegistry(broker.redis, lambda: broker.layout, lambda: broker.settings)
    await first.report(InFlight(4), ["default"], [])
    await second.report(InFlight(2), ["email"], ["fetch loop down"])
    shown = await broker.workers.alive()
    assert [w.worker_id for w in shown] == sorted([first.worker_id, second.worker_id])
    assert {w.status for w in shown} == {"ok", "unhealthy"}
    await first.withdraw()
    assert [w.worker_id for w in await broker.workers.alive()] == [second.worker_id]

    async def expired() -> bool:
        return await broker.workers.alive() == []

    await eventually(expired, what="the report expired", timeout_s=10)

    async def gone() -> bool:
        return await broker.workers.reports() == []

    await eventually(gone, what="the stale report dropped", timeout_s=10)
