"""uvicorn's HTTP protocol with deadlines, against clients that send slowly or not at all.

uvicorn times out idle keep-alive connections but not a request in progress: a client that
sends its headers one byte every few seconds (or opens a connection and says nothing) holds it
for good, and a thousand of them hold the server. `GuardedHttpToolsProtocol` (uvicorn
`--http src.api.http_guard:GuardedHttpToolsProtocol`, set by `docker-entrypoint.sh`) adds:

- a header deadline (`TASKJET_HTTP_HEADER_TIMEOUT_S`) from the connection's start or the
  request's first byte until its headers are complete; then 408 and the connection is closed;
- a body deadline (`TASKJET_HTTP_BODY_TIMEOUT_S`) from the headers until the body is complete;
  then the connection is closed (the app sees the client gone);
- a header size cap (`TASKJET_HTTP_MAX_HEADER_BYTES`): 431 and the connection is closed.

A refused connection is closed only after a short linger, reading and dropping what the
client still sends, so that the answer is not lost to a reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from src.config import get_settings

LINGER_S = 2.0


class _HeadersTooLargeError(Exception):
    """Raised inside the parser's callback, so that it stops at once."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._header_timeout_s = settings.http_header_timeout_s
        self._body_timeout_s = settings.http_body_timeout_s
        self._max_header_bytes = settings.http_max_header_bytes
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._request_begun = False
        self._header_bytes = 0
        self._headers_too_large = False
        self._refused = False

    # Deadlines --------------------------------------------------------------------------
    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expect_headers(self, begun: bool) -> None:
        self._in_headers = True
        self._request_begun = begun
        self._header_bytes = 0
        self._arm(self._header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        """408 to a request begun and never finished; a silent connection is just closed."""
        self._deadline = None
        if self.transport.is_closing():
            return
        begun = self._request_begun or self._header_bytes > 0
        if begun and (self.cycle is None or self.cycle.response_complete):
            self._refuse(408, "request_timeout", "request headers not received in time")
        else:
            self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        body = orjson.dumps({"error": {"code": code, "message": message, "details": None}})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        # Closing with unread input would reset the connection and could lose the answer:
        # end our side, drop whatever still comes, and close a moment later.
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER_S, self.transport.close)

    # Connection and parser callbacks ----------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_headers(begun=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Headers still incomplete after this chunk: everything counted so far is header.
        if (
            self._in_headers
            and self._header_bytes > self._max_header_bytes
            and not self.transport.is_closing()
        ):
            self._disarm()
            self._too_large()

    def _too_large(self) -> None:
        self._refuse(
            431,
            "headers_too_large",
            f"request headers over the limit of {self._max_header_bytes} bytes",
        )

    def send_400_response(self, msg: str) -> None:
        if self._headers_too_large:
            self._too_large()
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._in_headers:
            self._request_begun = True
        else:
            self._expect_headers(begun=True)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._max_header_bytes:
            self._headers_too_large = True
            self._disarm()
            raise _HeadersTooLargeError  # the parser stops; uvicorn answers via send_400
        self._arm(self._body_timeout_s, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()
