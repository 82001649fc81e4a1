"""The wire format of a task: one JSON document, labels as real JSON values.

taskiq's stock formatter turns every non-scalar label into `str(value)` and parses it back by
type tag; taskjet keeps labels as JSON so lists and dicts arrive as they were sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from taskiq.message import BrokerMessage, TaskiqMessage

from src.engine.core.errors import EncodeError


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


def readable_task_id(data: bytes) -> tuple[str | None, str]:
    """The task id (and name, or "") of a body that does not decode as a task, if they can
    be read from it, so its record can say what became of it."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    task_id, task_name = body.get("task_id"), body.get("task_name")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= 128:
        return None, ""
    return task_id, task_name if isinstance(task_name, str) and len(task_name) <= 512 else ""


class EncodedMessage(BrokerMessage):
    """A `BrokerMessage` that still knows the message it was made from (for its record)."""

    source: TaskiqMessage | None = None


def encoded(message: TaskiqMessage) -> EncodedMessage:
    # Validating these few fields is quicker than pydantic's `model_construct`.
    return EncodedMessage(
        task_id=message.task_id,
        task_name=message.task_name,
        message=encode(message),
        labels=message.labels,
        source=message,
    )


def source_of(message: BrokerMessage) -> TaskiqMessage:
    """The message a record is written from, without decoding the body again if possible."""
    if isinstance(message, EncodedMessage) and message.source is not None:
        return message.source
    return decode(message.message)
