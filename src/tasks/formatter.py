"""The wire format of a task: one JSON document, labels as real JSON values.

taskiq's stock formatter turns every non-scalar label into `str(value)` and parses it back by
type tag; taskjet keeps labels as JSON so lists and dicts arrive as they were sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from taskiq.abc.formatter import TaskiqFormatter
from taskiq.message import BrokerMessage, TaskiqMessage

from src.tasks.delivery import DeliveryBytes, current_delivery


class EncodeError(TypeError):
    """A task's arguments or labels cannot be sent as JSON."""


def encode(message: TaskiqMessage) -> bytes:
    body: dict[str, Any] = {
        "task_id": message.task_id,
        "task_name": message.task_name,
        "labels": message.labels,
        "args": message.args,
        "kwargs": message.kwargs,
    }
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise EncodeError(
            f"task {message.task_name!r} cannot be sent: its arguments and labels must be "
            f"JSON-serialisable ({exc})"
        ) from exc


def decode(data: bytes) -> TaskiqMessage:
    """Parse and validate a message body; raises `ValueError` for anything malformed."""
    return TaskiqMessage.model_validate_json(data)


class EncodedMessage(BrokerMessage):
    """A `BrokerMessage` that still knows the message it was made from (for its record)."""

    source: TaskiqMessage | None = None


class JetStreamFormatter(TaskiqFormatter):
    """JSON formatter that also binds the delivery being run to the running asyncio task."""

    def dumps(self, message: TaskiqMessage) -> EncodedMessage:
        return EncodedMessage.model_construct(
            task_id=message.task_id,
            task_name=message.task_name,
            message=encode(message),
            labels=message.labels,
            source=message,
        )

    def loads(self, message: bytes) -> TaskiqMessage:
        if isinstance(message, DeliveryBytes):
            delivery = message.delivery
            delivery.runner = asyncio.current_task()
            current_delivery.set(delivery)
            return delivery.message
        return decode(message)
