"""Wiping taskjet's data: its streams (with their consumers) and every Redis key under
`TASKJET_REDIS_PREFIX`, and nothing else.

Never `FLUSHALL` or `FLUSHDB`: other applications may share the Redis server and the NATS
account, so keys are found by a SCAN of the prefix and each is checked to start with it before
it is unlinked; only the streams taskjet names are deleted. `survey` shows what is there and
changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from src.engine.core.errors import WorkersAliveError
from src.engine.core.layout import Layout
from src.engine.worker.registry import WorkerInfo, WorkerRegistry

logger = logging.getLogger("taskjet.reset")

_BATCH = 500


class StreamSurvey(BaseModel):
    name: str
    messages: int
    bytes: int
    consumers: list[str]


class Survey(BaseModel):
    streams: list[StreamSurvey] = Field(description="taskjet's streams that exist.")
    keys: dict[str, int] = Field(description="Redis keys under the prefix, per kind.")
    workers: list[WorkerInfo] = Field(description="Workers reporting alive.")

    @property
    def empty(self) -> bool:
        return not self.streams and not self.keys


class Reset:
    def __init__(
        self,
        *,
        js: Callable[[], JetStreamContext],
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        workers: WorkerRegistry,
    ) -> None:
        self._js = js
        self._redis = redis
        self._layout = layout
        self._workers = workers

    async def survey(self) -> Survey:
        js, layout = self._js(), self._layout()
        streams: list[StreamSurvey] = []
        for name in layout.streams:
            try:
                info = await js.stream_info(name)
            except NotFoundError:
                continue
            consumers = sorted(c.name for c in await js.consumers_info(name) if c.name)
            streams.append(
                StreamSurvey(
                    name=name,
                    messages=int(info.state.messages),
                    bytes=int(info.state.bytes),
                    consumers=consumers,
                )
            )
        kinds: Counter[str] = Counter()
        async for key in self._keys():
            kinds[
                key[len(layout.redis_prefix) + 1 :].split(b":", 1)[0].decode(errors="replace")
            ] += 1
        return Survey(
            streams=streams, keys=dict(sorted(kinds.items())), workers=await self._workers.alive()
        )

    async def wipe(self, *, force: bool = False) -> Survey:
        """Delete it all; what was there. Refuses while workers report alive, unless `force`."""
        found = await self.survey()
        if found.workers and not force:
            raise WorkersAliveError(
                f"{len(found.workers)} worker(s) alive "
                f"({', '.join(w.worker_id for w in found.workers)}): stop them first"
            )
        js = self._js()
        for stream in found.streams:  # a stream's consumers go with it
            try:
                await js.delete_stream(stream.name)
            except NotFoundError:
                continue
        batch: list[bytes] = []
        async for key in self._keys():
            batch.append(key)
            if len(batch) >= _BATCH:
                await self._redis().unlink(*batch)
                batch = []
        if batch:
            await self._redis().unlink(*batch)
        logger.warning(
            "reset: deleted streams %s and %d key(s) under %r",
            [s.name for s in found.streams],
            sum(found.keys.values()),
            self._layout().redis_prefix,
        )
        return found

    async def _keys(self) -> AsyncIterator[bytes]:
        """Every key under the prefix (each checked: SCAN patterns are globs)."""
        layout = self._layout()
        prefix = f"{layout.redis_prefix}:".encode()
        async for raw in self._redis().scan_iter(match=layout.all_keys_pattern, count=1000):
            key = raw if isinstance(raw, bytes) else str(raw).encode()
            if key.startswith(prefix):
                yield key
