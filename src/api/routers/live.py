"""`/sse/{client_id}` and `WS /ws/{client_id}`: every event of the tasks submitted with that
`client_id`."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, WebSocket
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from src.api import live
from src.api.auth import StreamCaller
from src.api.deps import BrokerDep
from src.api.schemas import NAME_PATTERN
from src.api.streams import open_websocket, relay_to_websocket, sse_events

router = APIRouter(tags=["live"])


@router.get(
    "/sse/{client_id}",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 422: {}, 429: {}},
)
async def client_stream(
    client_id: Annotated[str, Path(pattern=NAME_PATTERN)],
    request: Request,
    broker: BrokerDep,
    caller: StreamCaller,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events for all of a client's tasks; any number of connections per client
    (up to `TASKJET_STREAMS_PER_KEY` per key). After `TASKJET_STREAM_IDLE_TIMEOUT_S` without
    an event it ends with `event: timeout`."""
    after = live.parse_last_event_id(last_event_id)
    slot = request.app.state.streams.open(caller)
    return EventSourceResponse(
        sse_events(live.client_events(broker, client_id, after), slot, live.event_view(request)),
        ping=15,
        background=BackgroundTask(slot.release),
    )


@router.websocket("/ws/{client_id}", name="client_websocket")
async def client_websocket(websocket: WebSocket, client_id: str) -> None:
    """The same events as `/sse/{client_id}`, as JSON messages, from the time it opens; closes
    after `TASKJET_STREAM_IDLE_TIMEOUT_S` without an event (4408), at once when this key has
    too many streams open (4429), and refuses a malformed client id (4422)."""
    if not re.fullmatch(NAME_PATTERN, client_id):
        await websocket.close(code=4422, reason="client_id may only hold letters, digits, _ and -")
        return
    slot = await open_websocket(websocket)
    if slot is None:
        return
    try:
        broker = websocket.app.state.broker
        items = live.client_events(broker, client_id)
        await relay_to_websocket(websocket, items, live.event_view(websocket))
    finally:
        slot.release()
