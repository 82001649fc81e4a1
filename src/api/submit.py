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

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from starlette.requests import Request
from starlette.responses import Response
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq_dependencies.dependency import Dependency

from src.api.errors import ApiError, UnprocessableError
from src.api.json_guard import json_problem
from src.api.links import link_paths
from src.api.quotas import check_queue
from src.api.schemas import SubmitRequest
from src.engine.broker import JetStreamBroker
from src.engine.core.states import TaskState
from src.engine.sending.kicker import TaskHandle, TaskjetKicker

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
    config = ConfigDict(extra=extra, allow_inf_nan=False)
    return create_model(f"{task.task_name}:arguments", __config__=config, **fields)


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
    # JSON mode would turn NaN into null: look at the values first (a task's own models may
    # make a float of the string "NaN").
    problem = json_problem(validated.model_dump(), max_depth=None)
    if problem is not None:
        raise UnprocessableError(
            f"invalid arguments for {task.task_name}: {problem}",
            [{"loc": ["body", "kwargs"], "msg": problem}],
        )
    dumped: dict[str, Any] = validated.model_dump(mode="json")
    return dumped


async def dispatch(
    task: AsyncTaskiqDecoratedTask[Any, Any], body: SubmitRequest, queues: set[str]
) -> TaskHandle[Any]:
    """Validate and queue one submission; `queues` are those the API may send tasks to."""
    kwargs = bind_arguments(task, body)
    options = body.options
    labels: dict[str, Any] = {}
    if options.queue:
        check_queue(options.queue, queues)
        labels["queue_name"] = options.queue
    if options.idempotency_key:
        labels["idempotency_key"] = options.idempotency_key
    if options.timeout:
        labels["timeout"] = options.timeout
    if options.client_id:
        labels["client_id"] = options.client_id
    if options.notify_url:
        labels["notify_url"] = options.notify_url
    if options.priority is not None:
        labels["priority"] = options.priority
    if options.delay is not None:
        labels["delay"] = options.delay
    if options.eta is not None:
        labels["eta"] = options.eta.timestamp()
    kicker = task.kicker().with_labels(**labels)
    assert isinstance(kicker, TaskjetKicker)
    return await kicker.kiq(**kwargs)


async def submit(request: Request, body: SubmitRequest) -> Response:
    """Queue a registered, API-submittable task (`POST /api/v1/tasks`, either route)."""
    state = request.app.state
    task = submittable(state.broker, body.task)
    handle = await dispatch(task, body, state.api_queues)
    return accepted(handle.task_id, link_paths(request, handle.task_id))


def accepted(task_id: str, links: dict[str, str]) -> Response:
    """The 202 answer (`SubmitAccepted`), written directly: these fields need no checking."""
    body = {"task_id": task_id, "state": TaskState.PENDING.value, "links": links}
    return Response(
        orjson.dumps(body),
        status_code=202,
        media_type="application/json",
        headers={"Location": links["self"]},
    )
