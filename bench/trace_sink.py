"""A stand-in OpenTelemetry collector for `--tracing`: takes OTLP over HTTP and drops it.

With `--tracing`, taskjet's harness, workers and HTTP server export every span with the OTLP
HTTP exporter (batched, in a background thread, as in production) to this sink, so the figures
include the full cost of tracing on, short of a collector's own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class TraceSink:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port; returns the OTLP endpoint to give the exporters."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                self.bytes += length
                writer.write(_OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the exporter hung up
        except asyncio.CancelledError:
            pass  # the sink is stopping: the connection goes with it
        finally:
            writer.close()


def tracing_env(endpoint: str) -> dict[str, str]:
    """What turns taskjet's tracing on, for the harness and every process it starts."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }


def enable(endpoint: str) -> None:
    os.environ.update(tracing_env(endpoint))
