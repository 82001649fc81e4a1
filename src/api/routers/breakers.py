"""Circuit breakers: their shared states, and the admin's reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from src.api.auth import AdminCaller, ReadCaller
from src.api.deps import BrokerDep
from src.api.errors import NotFoundError
from src.api.schemas import Breakers, BreakerView

router = APIRouter(tags=["operations"])


class BreakersReset(BaseModel):
    reset: list[str]


@router.get("/api/v1/circuit-breakers")
async def list_breakers(broker: BrokerDep, _: ReadCaller) -> Breakers:
    """Every circuit breaker tasks have used, with its state shared by all workers."""
    states = await broker.breakers.states()
    return Breakers(breakers=BreakerView.listed(states))


@router.post("/health/workers/reset-circuit-breaker", responses={404: {}})
async def reset_breakers(
    broker: BrokerDep,
    _: AdminCaller,
    name: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> BreakersReset:
    """Close every breaker, or the one named by `name` (404 if no task ever used it)."""
    reset = await broker.breakers.reset(name)
    if name is not None and not reset:
        raise NotFoundError(f"no circuit breaker named {name!r}")
    return BreakersReset(reset=reset)
