"""`GET /health`: can this process reach NATS (JetStream) and Redis right now? And
`/health/workers`: how every worker process says it is doing."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.schemas import (
    BreakerView,
    ComponentHealth,
    Health,
    WorkersDiagnostics,
    WorkersHealth,
)
from src.engine.worker.registry import DIAGNOSTICS, WorkerInfo

router = APIRouter(tags=["operations"])


async def _check_nats(broker: BrokerDep, timeout_s: float) -> ComponentHealth:
    try:
        if not broker.nc.is_connected:
            return ComponentHealth(ok=False, detail="disconnected")
        await asyncio.wait_for(broker.js.account_info(), timeout_s)
    except Exception as exc:
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}")
    return ComponentHealth(ok=True)


async def _check_redis(broker: BrokerDep, timeout_s: float) -> ComponentHealth:
    try:
        await asyncio.wait_for(broker.results.redis.ping(), timeout_s)
    except Exception as exc:
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}")
    return ComponentHealth(ok=True)


@router.get("/health", responses={503: {"model": Health}})
async def health(broker: BrokerDep, response: Response) -> Health:
    """200 when both are reachable, 503 (with the failing part named) otherwise."""
    timeout_s = broker.settings.health_timeout_s
    nats_health, redis_health = await asyncio.gather(
        _check_nats(broker, timeout_s), _check_redis(broker, timeout_s)
    )
    ok = nats_health.ok and redis_health.ok
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "unavailable", nats=nats_health, redis=redis_health)


@router.get("/health/workers", dependencies=[require("read")])
async def workers(broker: BrokerDep) -> WorkersHealth:
    """Every worker process that reported within `TASKJET_WORKER_TTL_S` (`ok` or
    `unhealthy`), and those that stopped reporting (`stale`) until their report expires; and
    the circuit breakers they share, with their states."""
    reports, breakers = await asyncio.gather(broker.workers.reports(), broker.breakers.states())
    return WorkersHealth(
        workers=[WorkerInfo.model_validate(w.model_dump(exclude=DIAGNOSTICS)) for w in reports],
        breakers=BreakerView.listed(breakers),
    )


@router.get("/health/workers/diagnostics", dependencies=[require("read")])
async def worker_diagnostics(broker: BrokerDep) -> WorkersDiagnostics:
    """The same, with the tasks each worker runs and its NATS and Redis round trips."""
    reports, breakers = await asyncio.gather(broker.workers.reports(), broker.breakers.states())
    return WorkersDiagnostics(workers=reports, breakers=BreakerView.listed(breakers))
