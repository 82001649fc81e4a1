"""`GET /api/v1/registry`: the tasks the API may submit, with the JSON Schema of their
arguments, so clients and the dashboard can build forms that the submit route accepts."""

from __future__ import annotations

from fastapi import APIRouter

from src.api.auth import require
from src.api.catalogue import Registry, api_registry
from src.api.deps import BrokerDep

router = APIRouter(prefix="/api/v1/registry", tags=["tasks"])


@router.get("", dependencies=[require("read")])
async def registry(broker: BrokerDep) -> Registry:
    """Each API-submittable task: its name, labels, and the JSON Schema its arguments are
    checked against by `POST /api/v1/tasks` (as keyword arguments; positional ones bind in
    the schema's property order)."""
    return api_registry(broker)
