"""Shared dependencies of the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from src.api.auth import Caller, require
from src.config import Settings
from src.engine.broker import JetStreamBroker


# Plain `def` dependencies would each be run in a worker thread, per request: these are async.
async def get_broker(request: Request) -> JetStreamBroker:
    broker: JetStreamBroker = request.app.state.broker
    return broker


async def get_app_settings(request: Request) -> Settings:
    broker: JetStreamBroker = request.app.state.broker
    return broker.settings


BrokerDep = Annotated[JetStreamBroker, Depends(get_broker)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def within_submit_quota(
    request: Request, caller: Annotated[Caller, require("submit")]
) -> Caller:
    """A submit key, with a submission left in its quota (429 otherwise)."""
    request.app.state.submit_quota.take(caller)
    return caller


async def api_queues(request: Request) -> set[str]:
    """The queues the API may send tasks to (worked out when the app was made)."""
    allowed: set[str] = request.app.state.api_queues
    return allowed


SubmitCaller = Annotated[Caller, Depends(within_submit_quota)]
ApiQueues = Annotated[set[str], Depends(api_queues)]
