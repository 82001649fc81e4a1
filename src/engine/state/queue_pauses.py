"""Which queues are paused: a set in Redis, so a pause holds across every worker and restart.

Workers re-read it when told (a core NATS broadcast on `<prefix>.control.queues`) and at least
every `REFRESH_S`, so a pause or resume takes effect within a second even if a broadcast is
missed.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from src.engine.core.layout import Layout

REFRESH_S = 1.0


class QueuePauses:
    def __init__(self, redis: Callable[[], Redis], layout: Callable[[], Layout]) -> None:
        self._redis = redis
        self._layout = layout

    async def pause(self, queue: str) -> None:
        await self._redis().sadd(self._layout().paused_queues_key, queue)

    async def resume(self, queue: str) -> None:
        await self._redis().srem(self._layout().paused_queues_key, queue)

    async def paused(self) -> set[str]:
        members = await self._redis().smembers(self._layout().paused_queues_key)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}
