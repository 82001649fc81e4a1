"""Files tasks produce: stored in chunks by the worker, listed and streamed by the API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from src.engine.core.errors import ArtifactNotFoundError
from src.tasks.broker import artifacts
from src.tasks.broker import broker as app_broker
from tests.conftest import StartWorker
from tests.support import tasks

MIB = 1 << 20


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_small_artifacts_are_listed_and_downloaded(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await tasks.small_artifacts.kiq()
    assert (await handle.wait_result(timeout=60)).return_value == ["report.csv", "empty.txt"]
    listed = (await client.get(f"/api/v1/tasks/{handle.task_id}/artifacts")).json()
    assert [(a["name"], a["size"], a["content_type"]) for a in listed] == [
        ("report.csv", 8, "text/csv"),
        ("empty.txt", 0, "text/plain"),
    ]
    response = await client.get(f"/api/v1/tasks/{handle.task_id}/artifacts/report.csv")
    assert response.status_code == 200
    assert response.content == b"a,b\n1,2\n"
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-length"] == "8"
    assert response.headers["content-disposition"] == 'attachment; filename="report.csv"'
    empty = await client.get(f"/api/v1/tasks/{handle.task_id}/artifacts/empty.txt")
    assert (empty.status_code, empty.content) == (200, b"")
    missing = await client.get(f"/api/v1/tasks/{handle.task_id}/artifacts/nope.txt")
    assert missing.status_code == 404
    assert (await client.get("/api/v1/tasks/unknown/artifacts")).json() == []
    # Deleting the task deletes its files.
    assert (await client.delete(f"/api/v1/tasks/{handle.task_id}")).status_code == 204
    assert (await client.get(f"/api/v1/tasks/{handle.task_id}/artifacts")).json() == []
    gone = await client.get(f"/api/v1/tasks/{handle.task_id}/artifacts/report.csv")
    assert gone.status_code == 404
    with pytest.raises(ArtifactNotFoundError):
        async for _ in app_broker.artifacts.chunks(handle.task_id, "report.csv"):
            pass


async def test_put_outside_a_running_task_is_refused() -> None:
    with pytest.raises(RuntimeError, match="running task"):
        await artifacts.put("x.txt", b"x")


async def test_a_200_mib_artifact_round_trips_with_bounded_worker_memory(
    client: httpx.AsyncClient, start_worker: StartWorker
) -> None:
    size = 200 * MIB
    worker = await start_worker()
    (child,) = worker.children()
    warm = await tasks.make_artifact.kiq("warm.bin", 4 * MIB, "application/octet-stream")
    await warm.wait_result(timeout=60)
    before = _peak_rss_mib(child.pid)
    handle = await tasks.make_artifact.kiq("big.bin", size, "application/octet-stream")
    result = await handle.wait_result(timeout=600)
    assert result.return_value == size, result
    grown = _peak_rss_mib(child.pid) - before
    assert grown < 64, f"the worker's peak memory grew {grown:.0f} MiB for a 200 MiB file"

    expected = hashlib.sha256()
    for piece in tasks.pattern(size):
        expected.update(piece)
    got, length = hashlib.sha256(), 0
    url = f"/api/v1/tasks/{handle.task_id}/artifacts/big.bin"
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        async for piece in response.aiter_bytes():
            got.update(piece)
            length += len(piece)
    assert length == size
    assert got.hexdigest() == expected.hexdigest()
