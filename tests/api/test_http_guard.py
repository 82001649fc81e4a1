"""Slow and careless HTTP clients against the server as deployed (`docker-entrypoint.sh`, uvicorn
with `src.api.http_guard`): they are cut off on time, and everyone else is still served."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from src.config import Settings
from src.embedded import free_port
from tests.api.conftest import bearer
from tests.conftest import ADMIN_KEY
from tests.support.processes import ROOT, Proc, eventually, spawn, wait_healthy

ENTRYPOINT = ROOT / "docker-entrypoint.sh"
HOST = "127.0.0.1"


def _start_server(env: dict[str, str], tmp_path: Path) -> tuple[Proc, int]:
    port = free_port()
    child_env = {
        **env,
        "RUN_MODE": "server",
        "HOST": HOST,
        "PORT": str(port),
        "PYTHON": sys.executable,
    }
    return spawn([str(ENTRYPOINT)], child_env, tmp_path / "server.log"), port


async def _trickle(port: int, deadline_s: float, connected: list[int]) -> tuple[bytes, float]:
    """Send a request's headers one byte every 0.2 s (it would take hours); returns what the
    server answered before closing, and when it did."""
    reader, writer = await asyncio.open_connection(HOST, port)
    connected.append(1)
    started = time.monotonic()
    request = b"GET /health HTTP/1.1\r\nHost: taskjet\r\nX-Slow: " + b"a" * 100_000
    answer = b""
    try:
        for byte in request:
            if time.monotonic() - started > deadline_s:
                raise AssertionError(f"still open after {deadline_s} s")
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            try:
                answer = await asyncio.wait_for(reader.read(65_536), 0.2)
            except TimeoutError:
                continue
            if answer:  # the rest of the answer, up to the close
                answer += await asyncio.wait_for(reader.read(), 30)
            break
    finally:
        writer.close()
    return answer, time.monotonic() - started


@pytest.mark.settings(http_header_timeout_s=5.0)
async def test_header_tricklers_are_cut_off_and_others_are_served(
    env: dict[str, str], tmp_path: Path
) -> None:
    proc, port = _start_server(env, tmp_path)
    try:
        await wait_healthy(proc, f"http://{HOST}:{port}")
        connected: list[int] = []
        tricklers = [
            asyncio.create_task(_trickle(port, deadline_s=90, connected=connected))
            for _ in range(300)
        ]

        async def all_connected() -> bool:
            return len(connected) == len(tricklers)

        await eventually(all_connected, what="every trickler connected")
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=30) as client:
            assert (await client.get("/health")).status_code == 200
        assert not all(t.done() for t in tricklers), "answered while they were held"
        outcomes = await asyncio.wait_for(asyncio.gather(*tricklers), 180)
    finally:
        await proc.stop()
    for answer, _ in outcomes:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b'"code":"request_timeout"' in answer
    # Without the deadline each would trickle for hours; the bound is generous for load.
    assert max(elapsed for _, elapsed in outcomes) < 90


@pytest.mark.settings(http_body_timeout_s=2.0)
async def test_a_body_that_stops_arriving_is_cut_off(env: dict[str, str], tmp_path: Path) -> None:
    proc, port = _start_server(env, tmp_path)
    try:
        base = f"http://{HOST}:{port}"
        await wait_healthy(proc, base)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: taskjet\r\n"
            + f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            + b'{"task": "add", '
        )
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 60) == b"", "closed, nothing answered"
        writer.close()
        async with httpx.AsyncClient(base_url=base, headers=bearer(ADMIN_KEY)) as client:
            response = await client.post("/api/v1/tasks", json={"task": "add", "args": [1, 2]})
            assert response.status_code == 202, "a whole body is taken as before"
    finally:
        await proc.stop()


async def test_oversized_headers_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    proc, port = _start_server(env, tmp_path)
    try:
        await wait_healthy(proc, f"http://{HOST}:{port}")
        big = b"X-Big: " + b"b" * 70_000 + b"\r\n"
        for request in (
            b"GET /health HTTP/1.1\r\nHost: taskjet\r\n" + big + b"\r\n",  # complete
            b"GET /health HTTP/1.1\r\nHost: taskjet\r\n" + big + big,  # never ends
        ):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 30)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
            assert b'"code":"headers_too_large"' in answer
    finally:
        await proc.stop()


@pytest.mark.settings(http_max_concurrency=5)
async def test_connections_beyond_the_limit_get_503(env: dict[str, str], tmp_path: Path) -> None:
    proc, port = _start_server(env, tmp_path)
    try:
        base = f"http://{HOST}:{port}"
        await wait_healthy(proc, base)
        idle = [await asyncio.open_connection(HOST, port) for _ in range(5)]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/health")).status_code == 503
            for _, writer in idle:
                writer.close()

            async def served_again() -> bool:
                return (await client.get("/health")).status_code == 200

            await eventually(served_again, what="served once the idle connections are gone")
    finally:
        await proc.stop()


@pytest.mark.settings(http_header_timeout_s=1.0, http_body_timeout_s=1.0, stream_idle_timeout_s=4.0)
async def test_streams_outlive_the_request_deadlines(env: dict[str, str], tmp_path: Path) -> None:
    proc, port = _start_server(env, tmp_path)
    try:
        base = f"http://{HOST}:{port}"
        await wait_healthy(proc, base)
        async with httpx.AsyncClient(base_url=base, headers=bearer(ADMIN_KEY), timeout=60) as c:
            submitted = await c.post(
                "/api/v1/tasks", json={"task": "add", "args": [1, 2], "options": {"delay": 3600}}
            )
            task_id = submitted.json()["task_id"]
            url = f"ws://{HOST}:{port}/api/v1/tasks/{task_id}/ws?token={ADMIN_KEY}"
            async with connect(url) as websocket:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(websocket.recv(), 60)
            # Closed by the stream's idle timeout (4 s), not cut at the 1 s request deadlines.
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4408
            async with c.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
                lines = [line async for line in response.aiter_lines()]
            assert "event: timeout" in lines
    finally:
        await proc.stop()


def test_entrypoint_passes_the_http_settings_with_their_defaults() -> None:
    server = re.search(r"server\(\) \{(.*?)\n\}", ENTRYPOINT.read_text(), re.S)
    assert server is not None
    passed = dict(re.findall(r'"\$\{TASKJET_([A-Z_]+):-([^}]*)\}"', server.group(1)))
    assert "--http src.api.http_guard:GuardedHttpToolsProtocol" in server.group(1)
    assert passed == {
        "HTTP_KEEP_ALIVE_S": str(Settings.model_fields["http_keep_alive_s"].default),
        "HTTP_MAX_CONCURRENCY": str(Settings.model_fields["http_max_concurrency"].default),
        "HTTP_SHUTDOWN_TIMEOUT_S": str(Settings.model_fields["http_shutdown_timeout_s"].default),
    }
