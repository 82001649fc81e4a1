"""Tasks: submit, read, list, cancel, retry, delete, requeue orphans, and follow live."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, WebSocket, status
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from src.api import live
from src.api.auth import AdminCaller, ReadCaller, StreamCaller, require
from src.api.deps import BrokerDep, SubmitCaller
from src.api.links import task_links
from src.api.schemas import (
    NAME_PATTERN,
    BulkFailure,
    BulkRequest,
    BulkResult,
    OrphansResult,
    SubmitAccepted,
    SubmitRequest,
    TaskDetail,
    TaskPage,
)
from src.api.streams import open_websocket, relay_to_websocket, sse_events
from src.api.submit import submit
from src.api.views import record_view
from src.engine.broker import JetStreamBroker
from src.engine.core import wire
from src.engine.core.errors import ResultMissingError, TaskConflictError, TaskNotFoundError
from src.engine.core.redaction import redact
from src.engine.core.states import TaskState
from src.engine.state.listing import RecordFilter

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmitAccepted,
    responses={
        404: {"description": "No such API-submittable task"},
        413: {},
        422: {},
        429: {"description": "The key's submissions are over TASKJET_API_SUBMIT_RATE"},
    },
)
async def submit_task(body: SubmitRequest, request: Request, _: SubmitCaller) -> Response:
    """Queue a registered, API-submittable task; its arguments are validated first."""
    # A JSON body is taken by `submit_route.py` first, the same way, with less machinery.
    return await submit(request, body)


@router.get("")
async def list_tasks(
    *,
    broker: BrokerDep,
    caller: ReadCaller,
    state: TaskState | None = None,
    name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    queue: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    client_id: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    worker: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    since: Annotated[
        float | None, Query(ge=0, le=1e11, description="Queued at or after (Unix time).")
    ] = None,
    until: Annotated[
        float | None, Query(ge=0, le=1e11, description="Queued at or before (Unix time).")
    ] = None,
    id_prefix: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TaskPage:
    """Newest first, filtered; follow `next_cursor` for more. One page looks at a bounded
    stretch of the index, so with rare matches it may hold fewer than `limit` items and still
    have a `next_cursor`."""
    where = RecordFilter(
        state=state,
        task_name=name,
        queue=queue,
        client_id=client_id,
        worker=worker,
        since=since,
        until=until,
        id_prefix=id_prefix,
    )
    page = await broker.records.page(limit=limit, cursor=cursor, where=where)
    items = [record_view(record, caller, broker.settings) for record in page.records]
    return TaskPage(items=items, next_cursor=page.next_cursor)


@router.post("/bulk", dependencies=[require("admin")])
async def bulk_action(body: BulkRequest, broker: BrokerDep) -> BulkResult:
    """Retry, cancel or delete many tasks at once; each one that cannot be is listed with why,
    and the others go ahead."""
    act = {
        "retry": broker.control.retry,
        "cancel": broker.control.cancel,
        "delete": broker.control.delete,
    }[body.action]
    result = BulkResult(done=[], failed=[])
    for task_id in dict.fromkeys(body.task_ids):
        try:
            await act(task_id)
        except (TaskNotFoundError, TaskConflictError) as exc:
            result.failed.append(BulkFailure(task_id=task_id, error=str(exc)))
        else:
            result.done.append(task_id)
    return result


@router.post("/requeue-orphaned", dependencies=[require("admin")], response_model=OrphansResult)
async def requeue_orphaned(broker: BrokerDep) -> OrphansResult:
    """Hand back tasks recorded as running on workers that stopped reporting."""
    outcome = await broker.control.requeue_orphaned()
    return OrphansResult(handed_back=outcome.handed_back, republished=outcome.republished)


@router.get("/{task_id}", name="get_task")
async def get_task(
    task_id: str, request: Request, broker: BrokerDep, caller: ReadCaller
) -> TaskDetail:
    """The task's record and, once it succeeded, its result (values under keys named like
    secrets shown as `***`)."""
    record = record_view(await broker.control.record(task_id), caller, broker.settings)
    result: Any = None
    if record.state is TaskState.SUCCESS:
        try:
            result = redact((await broker.results.get_result(task_id)).return_value)
        except ResultMissingError:
            result = None
    labels = await _labels(broker, task_id)
    return TaskDetail(
        **record.model_dump(), result=result, labels=labels, links=task_links(request, task_id)
    )


async def _labels(broker: JetStreamBroker, task_id: str) -> dict[str, Any] | None:
    """The labels the task was sent with (redacted), when its message was kept and reads as
    one; a message published by something else may not."""
    payload = await broker.records.payload(task_id)
    try:
        return redact(wire.decode(payload).labels) if payload else None
    except ValueError:
        return None


@router.delete(
    "/{task_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require("admin")]
)
async def delete_task(task_id: str, broker: BrokerDep) -> Response:
    """Forget a finished task (record, result, counters); cancel a live one first (409)."""
    await broker.control.delete(task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{task_id}/cancel", name="cancel_task")
async def cancel_task(
    task_id: str, request: Request, broker: BrokerDep, caller: AdminCaller
) -> TaskDetail:
    """A queued task never starts; a running one is cancelled where it runs (409 if ended)."""
    record = record_view(await broker.control.cancel(task_id), caller, broker.settings)
    return TaskDetail(**record.model_dump(), links=task_links(request, task_id))


@router.post("/{task_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_task(
    task_id: str, request: Request, broker: BrokerDep, caller: AdminCaller
) -> TaskDetail:
    """Run a failed, dead or cancelled task again with the same arguments (409 otherwise)."""
    record = record_view(await broker.control.retry(task_id), caller, broker.settings)
    return TaskDetail(**record.model_dump(), links=task_links(request, task_id))


@router.get(
    "/{task_id}/events",
    name="task_events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 422: {}, 429: {}},
)
async def task_events(
    task_id: str,
    request: Request,
    broker: BrokerDep,
    caller: StreamCaller,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events of the task until it ends; resumable with `Last-Event-ID`. After
    `TASKJET_STREAM_IDLE_TIMEOUT_S` without an event it ends with `event: timeout`."""
    after = live.parse_last_event_id(last_event_id)
    await broker.control.record(task_id)
    slot = request.app.state.streams.open(caller)
    return EventSourceResponse(
        sse_events(live.task_events(broker, task_id, after), slot, live.event_view(request)),
        ping=15,
        background=BackgroundTask(slot.release),
    )


@router.websocket("/{task_id}/ws", name="task_websocket")
async def task_websocket(websocket: WebSocket, task_id: str) -> None:
    """The same events as `/events`, as JSON messages; closes after the task ends (1000), after
    `TASKJET_STREAM_IDLE_TIMEOUT_S` without an event (4408), or at once when this key has too
    many streams open (4429). The key: `Authorization: Bearer <key>` or `?token=<key>`."""
    broker = websocket.app.state.broker
    slot = await open_websocket(websocket, lambda: broker.control.record(task_id))
    if slot is None:
        return
    try:
        view = live.event_view(websocket)
        await relay_to_websocket(websocket, live.task_events(broker, task_id), view)
    finally:
        slot.release()
