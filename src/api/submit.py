"""Dispatching tasks named in HTTP requests: only API-submittable ones, arguments validated.

A task opts in with the `api=True` label: `@register_task(api=True)`. Its arguments are checked
against its signature (a pydantic model built from the type hints) before anything is queued,
so a bad call is a 422 with field errors, not a failed task later.
"""

from __future__ import annotations

import inspect
import typing
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq_dependencies.dependency import Dependency

from src.api.errors import ApiError, UnprocessableError
from src.api.schemas import SubmitRequest
from src.tasks.jetstream import JetStreamBroker
from src.tasks.kicker import TaskHandle, TaskjetKicker

API_LABEL = "api"


class UnknownTaskError(ApiError):
    status_code = 404
    code = "unknown_task"


def submittable(broker: JetStreamBroker, name: str) -> AsyncTaskiqDecoratedTask[Any, Any]:
    task = broker.find_task(name)
    if task is None or task.labels.get(API_LABEL) is not True:
        raise UnknownTaskError(f"no task {name!r} may be submitted over the API")
    return task


@lru_cache(maxsize=1024)
def arguments_model(task: AsyncTaskiqDecoratedTask[Any, Any]) -> type[BaseModel]:
    """A model of the task's parameters; injected dependencies are left out."""
    func = inspect.unwrap(task.original_func)
    hints = typing.get_type_hints(func)
    fields: dict[str, Any] = {}
    extra: typing.Literal["forbid", "allow"] = "forbid"
    for name, param in inspect.signature(func).parameters.items():
        if isinstance(param.default, Dependency):
            continue
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        default = ... if param.default is param.empty else param.default
        fields[name] = (hints.get(name, Any), default)
    return create_model(f"{task.task_name}:arguments", __config__=ConfigDict(extra=extra), **fields)


def bind_arguments(task: AsyncTaskiqDecoratedTask[Any, Any], body: SubmitRequest) -> dict[str, Any]:
    """Positional and keyword arguments → validated keyword arguments, as JSON values."""
    model = arguments_model(task)
    names = list(model.model_fields)
    if len(body.args) > len(names):
        raise UnprocessableError(
            f"{task.task_name} takes at most {len(names)} positional argument(s)",
            [{"loc": ["body", "args"], "msg": "too many positional arguments"}],
        )
    values = dict(zip(names, body.args, strict=False))
    clash = sorted(set(values) & set(body.kwargs))
    if clash:
        raise UnprocessableError(
            "arguments given both by position and by name",
            [{"loc": ["body", "kwargs", name], "msg": "given twice"} for name in clash],
        )
    values.update(body.kwargs)
    try:
        validated = model.model_validate(values)
    except ValidationError as exc:
        raise UnprocessableError(
            f"invalid arguments for {task.task_name}",
            [
                {
                    "loc": ["body", "kwargs", *map(str, err["loc"])],
                    "msg": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors()
            ],
        ) from None
    dumped: dict[str, Any] = validated.model_dump(mode="json")
    return dumped


async def dispatch(
    task: AsyncTaskiqDecoratedTask[Any, Any], body: SubmitRequest
) -> TaskHandle[Any]:
    kwargs = bind_arguments(task, body)
    options = body.options
    labels: dict[str, Any] = {}
    if options.queue:
        labels["queue_name"] = options.queue
    if options.idempotency_key:
        labels["idempotency_key"] = options.idempotency_key
    if options.timeout:
        labels["timeout"] = options.timeout
    if options.client_id:
        labels["client_id"] = options.client_id
    if options.priority is not None:
        labels["priority"] = options.priority
    if options.delay is not None:
        labels["delay"] = options.delay
    if options.eta is not None:
        labels["eta"] = options.eta.timestamp()
    kicker = task.kicker().with_labels(**labels)
    assert isinstance(kicker, TaskjetKicker)
    return await kicker.kiq(**kwargs)
