"""`GET /api/v1/stats`: task outcomes, run and wait times per minute, for the whole cluster."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.errors import UnprocessableError
from src.engine.state.stats import MINUTE_S

router = APIRouter(prefix="/api/v1", tags=["operations"])


class StatsTotals(BaseModel):
    succeeded: int
    failed: int
    retried: int = Field(description="Attempts that failed and will run again.")
    dead: int
    cancelled: int
    run_count: int
    run_seconds_sum: float
    wait_count: int
    wait_seconds_sum: float


class StatsBucket(StatsTotals):
    start: int = Field(description="Unix time the bucket starts.")


class StatsHistogram(BaseModel):
    le: list[float | str] = Field(description="Upper bounds in seconds, the last `+Inf`.")
    counts: list[int] = Field(description="Cumulative: runs that took at most `le[i]`.")


class Stats(BaseModel):
    step: int
    since: int
    until: int
    task: str | None
    queue: str | None
    buckets: list[StatsBucket] = Field(description="Oldest first; empty steps count zero.")
    totals: StatsTotals
    run_histogram: StatsHistogram
    wait_histogram: StatsHistogram


def parse_since(text: str, now: float) -> int:
    """Unix seconds or an ISO 8601 time (UTC unless it says otherwise), not in the future."""
    try:
        moment = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _bad("since", f"{text!r} is not Unix seconds or an ISO 8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        moment = parsed.timestamp()
    if not math.isfinite(moment) or moment < 0:
        raise _bad("since", f"{text!r} is not a time after 1970")
    if moment > now:
        raise _bad("since", f"{text!r} is in the future")
    return int(moment)


def _bad(field: str, message: str) -> UnprocessableError:
    return UnprocessableError(message, [{"loc": ["query", field], "msg": message}])


@router.get("/stats", dependencies=[require("read")])
async def stats(
    broker: BrokerDep,
    since: Annotated[
        str | None,
        Query(description="Unix seconds or ISO 8601; default one hour ago.", max_length=64),
    ] = None,
    step: Annotated[int, Query(description="Seconds per bucket, a multiple of 60.")] = 60,
    task: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    queue: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> Stats:
    """Counts per `step` from `since` to now (kept `TASKJET_STATS_RETENTION_S`; older times
    start at the oldest kept minute), for one task name and/or queue or for all."""
    now = time.time()
    if step <= 0 or step % MINUTE_S:
        raise _bad("step", f"step must be a positive multiple of 60 seconds, not {step}")
    start = int(now) - 3600 if since is None else parse_since(since, now)
    start = max(start, int(now) - broker.settings.stats_retention_s)
    series = await broker.stats.series(start, step, task=task, queue=queue, until=int(now))
    return Stats.model_validate(
        {
            "step": series.step,
            "since": series.since,
            "until": series.until,
            "task": series.task,
            "queue": series.queue,
            "buckets": series.buckets,
            "totals": series.totals,
            "run_histogram": {"le": series.run_histogram.le, "counts": series.run_histogram.counts},
            "wait_histogram": {
                "le": series.wait_histogram.le,
                "counts": series.wait_histogram.counts,
            },
        }
    )
