"""Tasks: submit, read, list, cancel, retry, delete, requeue orphans, and follow live."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, WebSocket, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from src.api import live
from src.api.auth import authorize, bearer_token, require
from src.api.deps import BrokerDep
from src.api.errors import ApiError
from src.api.schemas import (
    OrphansResult,
    SubmitAccepted,
    SubmitRequest,
    TaskDetail,
    TaskLinks,
    TaskPage,
)
from src.api.submit import dispatch, submittable
from src.tasks.control import TaskNotFoundError
from src.tasks.results import ResultMissingError
from src.tasks.states import TaskState

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


def links(request: Request, task_id: str) -> TaskLinks:
    """One route lookup, not four: this runs for every submitted task."""
    base = str(request.url_for("get_task", task_id=task_id))
    return TaskLinks(
        self=base,
        events=f"{base}/events",
        websocket=f"{base.replace('http', 'ws', 1)}/ws",
        cancel=f"{base}/cancel",
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[require("submit")],
    responses={404: {"description": "No such API-submittable task"}, 413: {}, 422: {}},
)
async def submit_task(
    body: SubmitRequest, request: Request, response: Response, broker: BrokerDep
) -> SubmitAccepted:
    """Queue a registered, API-submittable task; its arguments are validated first."""
    task = submittable(broker, body.task)
    handle = await dispatch(task, body)
    task_links = links(request, handle.task_id)
    response.headers["Location"] = task_links.self
    return SubmitAccepted(task_id=handle.task_id, state=TaskState.PENDING, links=task_links)


@router.get("", dependencies=[require("read")])
async def list_tasks(
    broker: BrokerDep,
    state: TaskState | None = None,
    name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TaskPage:
    """Newest first, optionally by state and/or task name; follow `next_cursor` for more."""
    page = await broker.records.page(state=state, task_name=name, limit=limit, cursor=cursor)
    return TaskPage(items=page.records, next_cursor=page.next_cursor)


@router.post("/requeue-orphaned", dependencies=[require("admin")], response_model=OrphansResult)
async def requeue_orphaned(broker: BrokerDep) -> OrphansResult:
    """Hand back tasks recorded as running on workers that stopped reporting."""
    outcome = await broker.control.requeue_orphaned()
    return OrphansResult(handed_back=outcome.handed_back, republished=outcome.republished)


@router.get("/{task_id}", name="get_task", dependencies=[require("read")])
async def get_task(task_id: str, request: Request, broker: BrokerDep) -> TaskDetail:
    """The task's record and, once it succeeded, its result."""
    record = await broker.control.record(task_id)
    result: Any = None
    if record.state is TaskState.SUCCESS:
        try:
            result = (await broker.results.get_result(task_id)).return_value
        except ResultMissingError:
            result = None
    return TaskDetail(**record.model_dump(), result=result, links=links(request, task_id))


@router.delete(
    "/{task_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require("admin")]
)
async def delete_task(task_id: str, broker: BrokerDep) -> Response:
    """Forget a finished task (record, result, counters); cancel a live one first (409)."""
    await broker.control.delete(task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{task_id}/cancel", name="cancel_task", dependencies=[require("admin")])
async def cancel_task(task_id: str, request: Request, broker: BrokerDep) -> TaskDetail:
    """A queued task never starts; a running one is cancelled where it runs (409 if ended)."""
    record = await broker.control.cancel(task_id)
    return TaskDetail(**record.model_dump(), links=links(request, task_id))


@router.post(
    "/{task_id}/retry", status_code=status.HTTP_202_ACCEPTED, dependencies=[require("admin")]
)
async def retry_task(task_id: str, request: Request, broker: BrokerDep) -> TaskDetail:
    """Run a failed, dead or cancelled task again with the same arguments (409 otherwise)."""
    record = await broker.control.retry(task_id)
    return TaskDetail(**record.model_dump(), links=links(request, task_id))


@router.get(
    "/{task_id}/events",
    name="task_events",
    dependencies=[require("read")],
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def task_events(
    task_id: str,
    broker: BrokerDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events of the task until it ends; resumable with `Last-Event-ID`."""
    await broker.control.record(task_id)
    after = live.parse_last_event_id(last_event_id)

    async def stream() -> Any:
        async for sequence, event in live.task_events(broker, task_id, after):
            yield ServerSentEvent(data=event.model_dump_json(), id=str(sequence))

    return EventSourceResponse(stream(), ping=15)


@router.websocket("/{task_id}/ws", name="task_websocket")
async def task_websocket(websocket: WebSocket, task_id: str) -> None:
    """The same events as `/events`, as JSON messages; closes after the task ends."""
    broker = websocket.app.state.broker
    token = bearer_token(websocket.headers.get("authorization")) or websocket.query_params.get(
        "token"
    )
    try:
        authorize(broker.settings, token, "read")
        await broker.control.record(task_id)
    except ApiError as exc:
        await websocket.close(code=4000 + exc.status_code, reason=exc.message)
        return
    except TaskNotFoundError as exc:
        await websocket.close(code=4404, reason=str(exc))
        return
    await websocket.accept()
    async for _, event in live.task_events(broker, task_id):
        await websocket.send_text(event.model_dump_json())
    await websocket.close()
