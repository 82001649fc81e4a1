"""Open event streams: counted per API key, and ended as soon as their client goes.

Every SSE and WebSocket follower holds a JetStream consumer, so each key may hold at most
`TASKJET_STREAMS_PER_KEY` of them in one server process (429 for SSE, close code 4429 for a
WebSocket beyond it). A WebSocket's events are sent while its incoming side is read at the same
time: the client's close (or the server's shutdown) ends the follower at once, even while no
event is due.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from sse_starlette import ServerSentEvent
from starlette.websockets import WebSocket, WebSocketDisconnect

from src.api.auth import Caller, authorize, presented_key
from src.api.errors import ApiError, TooManyRequestsError
from src.api.live import Idle, Ready
from src.engine.core.errors import TaskNotFoundError
from src.engine.state.events import TaskEvent

CLOSE_IDLE = 4408
CLOSE_TOO_MANY = 4429


class StreamSlot:
    """One counted stream; `release` is safe to call more than once."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class StreamLimits:
    """Open streams per key in this process."""

    def __init__(self, per_key: Callable[[], int]) -> None:
        self._per_key = per_key
        self._open: Counter[str] = Counter()

    def open(self, caller: Caller) -> StreamSlot:
        limit = self._per_key()
        if self._open[caller.key_id] >= limit:
            raise TooManyRequestsError(
                f"this key has {limit} event streams open already; close one first",
                {"limit": limit},
            )
        self._open[caller.key_id] += 1

        def release() -> None:
            self._open[caller.key_id] -= 1
            if self._open[caller.key_id] <= 0:
                del self._open[caller.key_id]

        return StreamSlot(release)

    def count(self, caller: Caller) -> int:
        return self._open[caller.key_id]


Items = AsyncGenerator[tuple[int, TaskEvent] | Ready | Idle | None, None]
# An event as the client gets it (JSON): see `live.event_view`.
EventView = Callable[[TaskEvent], str]


async def sse_events(
    items: Items, slot: StreamSlot, view: EventView = TaskEvent.to_json
) -> AsyncIterator[ServerSentEvent]:
    """Followed events as SSE: an event per task event (its id the stream sequence), a
    comment for None, `event: ready` for `Ready`, and for `Idle` a final `event: timeout`
    before the stream ends."""
    try:
        async with contextlib.aclosing(items):
            async for item in items:
                if item is None:
                    yield ServerSentEvent(comment="listening")
                elif isinstance(item, Ready):
                    yield ServerSentEvent(event="ready", data=item.to_json())
                elif isinstance(item, Idle):
                    body = {"reason": "idle", "message": item.message, "idle_s": item.seconds}
                    yield ServerSentEvent(event="timeout", data=orjson.dumps(body).decode())
                    return
                else:
                    sequence, event = item
                    yield ServerSentEvent(data=view(event), id=str(sequence))
    finally:
        slot.release()


async def open_websocket(
    websocket: WebSocket, check: Callable[[], Awaitable[Any]] | None = None
) -> StreamSlot | None:
    """Authorise a WebSocket (Bearer header or `?token=`, read role), run `check` (which may
    raise `TaskNotFoundError`), count it against the key's streams and accept it; None when it
    was refused (and closed: 4401/4403/4404 at the handshake, 4429 after it)."""
    broker = websocket.app.state.broker
    try:
        token = presented_key(
            websocket.headers.get("authorization"), websocket.query_params.get("token"), True
        )
        caller = authorize(broker.settings, token, "read", allow_query=True)
        if check is not None:
            await check()
    except ApiError as exc:
        await websocket.close(code=4000 + exc.status_code, reason=exc.message)
        return None
    except TaskNotFoundError as exc:
        await websocket.close(code=4404, reason=str(exc))
        return None
    try:
        slot: StreamSlot = websocket.app.state.streams.open(caller)
    except ApiError as exc:  # told after the handshake, so that browsers see the code
        await websocket.accept()
        await websocket.close(code=CLOSE_TOO_MANY, reason=exc.message)
        return None
    await websocket.accept()
    return slot


async def relay_to_websocket(
    websocket: WebSocket, items: Items, view: EventView = TaskEvent.to_json
) -> None:
    """Send followed events until the last one (then close), an `Idle` (close 4408), or the
    client going away, whichever comes first; the follower is closed in every case.

    Both sides run in one anyio task group: its cancellation is delivered again at every
    await until the other side has stopped, so a cancellation that some library swallows
    once cannot leave a follower running for a client long gone."""

    async def send_all() -> None:
        async with contextlib.aclosing(items):
            async for item in items:
                if isinstance(item, Idle):
                    await websocket.close(code=CLOSE_IDLE, reason=item.message)
                    return
                if isinstance(item, Ready):
                    await websocket.send_text(item.to_json())
                elif item is not None:  # None: nothing happened for a while
                    await websocket.send_text(view(item[1]))
        await websocket.close()

    async def until_client_leaves() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; what they send is dropped

    async with anyio.create_task_group() as group:

        async def then_stop(side: Callable[[], Awaitable[None]]) -> None:
            with contextlib.suppress(WebSocketDisconnect, OSError):  # the client went away
                await side()
            group.cancel_scope.cancel()

        group.start_soon(then_stop, send_all)
        group.start_soon(then_stop, until_client_leaves)
