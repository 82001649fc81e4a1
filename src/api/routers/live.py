"""`/sse/{client_id}`: every event of the tasks submitted with that `client_id`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from sse_starlette import EventSourceResponse, ServerSentEvent

from src.api import live
from src.api.auth import require
from src.api.deps import BrokerDep
from src.api.schemas import NAME_PATTERN

router = APIRouter(tags=["live"])


@router.get(
    "/sse/{client_id}",
    dependencies=[require("read")],
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def client_stream(
    client_id: Annotated[str, Path(pattern=NAME_PATTERN)],
    broker: BrokerDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events for all of a client's tasks; any number of connections per client."""
    after = live.parse_last_event_id(last_event_id)

    async def stream() -> Any:
        async for item in live.client_events(broker, client_id, after):
            if item is None:
                yield ServerSentEvent(comment="listening")
                continue
            sequence, event = item
            yield ServerSentEvent(data=event.model_dump_json(), id=str(sequence))

    return EventSourceResponse(stream(), ping=15)
