"""`TASKJET_METRICS_PORT`: `/metrics` on a port of its own, without an API key.

Prometheus expects to scrape without credentials; on this port it can, while the API port
keeps asking for a key. Keep the port inside the cluster (a NetworkPolicy, no Ingress): it
shows task names and queue depths. Several server processes of one pod share the port
(SO_REUSEPORT); each answers for the whole cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("taskjet.metrics")
_HEAD_TIMEOUT_S = 5.0
_HEAD_MAX_BYTES = 8192


class MetricsPort:
    """A minimal HTTP/1.1 server: `GET /metrics` and nothing else, one request a connection."""

    def __init__(
        self, render: Callable[[], Awaitable[bytes]], port: int, content_type: str
    ) -> None:
        self._render = render
        self._port = port
        self._content_type = content_type
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, port=self._port, reuse_port=True, limit=_HEAD_MAX_BYTES
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            if path != "/metrics":
                await _answer(writer, "404 Not Found", b"not found\n", "text/plain")
            elif method not in ("GET", "HEAD"):
                await _answer(writer, "405 Method Not Allowed", b"GET only\n", "text/plain")
            else:
                try:
                    body = await self._render()
                except Exception as exc:  # NATS or Redis away: say so, Prometheus marks it down
                    logger.warning("metrics not read: %s", exc)
                    await _answer(writer, "503 Service Unavailable", b"unavailable\n", "text/plain")
                    return
                await _answer(
                    writer, "200 OK", body if method == "GET" else b"", self._content_type
                )
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _answer(
    writer: asyncio.StreamWriter, status: str, body: bytes, content_type: str
) -> None:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
