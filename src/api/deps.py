"""Shared dependencies of the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from src.config import Settings
from src.tasks.jetstream import JetStreamBroker


def get_broker(request: Request) -> JetStreamBroker:
    broker: JetStreamBroker = request.app.state.broker
    return broker


def get_app_settings(request: Request) -> Settings:
    return get_broker(request).settings


BrokerDep = Annotated[JetStreamBroker, Depends(get_broker)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
