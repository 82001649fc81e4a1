"""`GET /metrics`: the cluster's Prometheus metrics (see `src/api/metrics.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.metrics import CONTENT_TYPE, scrape

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    dependencies=[require("read")],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
async def metrics(broker: BrokerDep) -> Response:
    """Queue depths, in flight, dead letters, task outcomes, run and wait time histograms,
    live workers and schedule lag, for the whole cluster. A read key, or the key-less port
    `TASKJET_METRICS_PORT`."""
    return Response(await scrape(broker), media_type=CONTENT_TYPE)
