"""The task catalogue: each registered task's labels, whether the API may submit it, and the
JSON Schema of its arguments, built by the same model that validates `POST /api/v1/tasks`
(so a form made from the schema is refused for the same reasons as a request).

`GET /api/v1/registry` and `taskjet inspect registered` both read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, Field

from src.api.submit import API_LABEL, arguments_model
from src.engine.broker import JetStreamBroker


class TaskEntry(BaseModel):
    name: str
    api: bool = Field(description="The HTTP API may submit it (`api=True` label).")
    labels: dict[str, Any] = Field(description="Its labels, as JSON (classes by name).")
    arguments: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of its arguments (null: not known here)."
    )
    workers: int | None = Field(
        default=None, description="Live workers that know it (null: not asked)."
    )


class Registry(BaseModel):
    tasks: list[TaskEntry]


def _json_safe(labels: dict[str, Any]) -> dict[str, Any]:
    """Labels as JSON: exception classes (`retry_for`) and other objects by their name."""

    def name_of(value: object) -> str:
        return str(getattr(value, "__name__", None) or repr(value))

    safe: dict[str, Any] = orjson.loads(orjson.dumps(labels, default=name_of))
    return safe


def entry(broker: JetStreamBroker, name: str, workers: int | None = None) -> TaskEntry:
    """What is known here of the task `name` (a task only workers know has no labels here)."""
    task = broker.find_task(name)
    if task is None:
        return TaskEntry(name=name, api=False, labels={}, workers=workers)
    return TaskEntry(
        name=name,
        api=task.labels.get(API_LABEL) is True,
        labels=_json_safe(task.labels),
        arguments=arguments_model(task).model_json_schema(),
        workers=workers,
    )


def api_registry(broker: JetStreamBroker) -> Registry:
    """The tasks the API may submit, by name."""
    return Registry(
        tasks=[
            entry(broker, name)
            for name, task in sorted(broker.get_all_tasks().items())
            if task.labels.get(API_LABEL) is True
        ]
    )


def worker_registry(broker: JetStreamBroker, reported: Iterable[list[str]]) -> Registry:
    """The tasks live workers report knowing (each list is one worker's), with how many
    workers know each."""
    known: dict[str, int] = {}
    for names in reported:
        for name in set(names):
            known[name] = known.get(name, 0) + 1
    return Registry(tasks=[entry(broker, name, count) for name, count in sorted(known.items())])
