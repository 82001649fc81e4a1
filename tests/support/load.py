"""A stream of tasks through a cluster under faults, and the tally the fault tests assert on:
tasks lost, results stored, duplicate runs, and what the API answered meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from src.engine.broker import JetStreamBroker
from tests.support import tasks


@dataclass
class Tally:
    sent: int = 0
    results: int = 0
    lost: list[str] = field(default_factory=list)
    never_ran: int = 0
    why_no_result: Counter[str] = field(default_factory=Counter)  # the lost tasks' errors
    duplicates: int = 0
    api_answers: Counter[int] = field(default_factory=Counter)

    def report(self) -> str:
        return (
            f"sent {self.sent}, results {self.results}, lost {len(self.lost)} "
            f"(never ran: {self.never_ran}; no result: {dict(self.why_no_result.most_common(3))}), "
            f"duplicate runs {self.duplicates}, API answers {dict(self.api_answers)}"
        )


async def send(count: int, in_flight: int, keys: list[str], handles: list[Any]) -> None:
    """Dispatch `count` counting tasks, `in_flight` at a time, appending as they are accepted."""
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            key = uuid.uuid4().hex
            handle = await tasks.count.kiq(key)
            keys.append(key)
            handles.append(handle)

    await asyncio.gather(*(one() for _ in range(count)))


async def poll_api(base: str, headers: dict[str, str], tally: Tally, stop: asyncio.Event) -> None:
    """Ask the API what it sees, every 100 ms, until `stop`: counts each status code."""
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        while not stop.is_set():
            for path in ("/health", "/api/v1/queues/status"):
                try:
                    tally.api_answers[(await client.get(path)).status_code] += 1
                except httpx.TransportError:
                    tally.api_answers[0] += 1
            await asyncio.sleep(0.1)


async def settle(
    broker: JetStreamBroker, keys: list[str], handles: list[Any], timeout_s: float
) -> Tally:
    """Wait for every result, then count what ran how often. A task is lost if it has no
    result or never ran."""
    tally = Tally(sent=len(handles))
    results = await asyncio.gather(
        *(h.wait_result(timeout=timeout_s) for h in handles), return_exceptions=True
    )
    redis = broker.results.redis
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(f"test-count:{key}")
        runs = [int(r or 0) for r in await pipe.execute()]
    for handle, result, ran in zip(handles, results, runs, strict=True):
        stored = not isinstance(result, BaseException) and not result.is_err
        tally.results += stored
        if not stored or ran == 0:
            tally.lost.append(handle.task_id)
            tally.never_ran += ran == 0
        if not stored:
            error = result if isinstance(result, BaseException) else result.error
            tally.why_no_result[f"{type(error).__name__}: {error}"[:120]] += 1
        tally.duplicates += max(0, ran - 1)
    return tally
