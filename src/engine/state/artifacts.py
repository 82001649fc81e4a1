"""Files tasks produce, in the NATS JetStream object store, listed per task in Redis.

An object is sent and read in chunks (128 KiB, nats-py's object store), so a file never sits
whole in a worker's or the API's memory. The bucket keeps objects `TASKJET_RESULT_TTL_S`, and
the per-task listing expires with the task's result: an artifact lives as long as its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson
from nats.js import JetStreamContext
from nats.js.api import ObjectMeta, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore
from pydantic import BaseModel
from redis.asyncio import Redis

from src.engine.core.errors import ArtifactNotFoundError
from src.engine.core.layout import Layout

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NO_PENDING = 0


class Artifact(BaseModel):
    name: str
    size: int
    content_type: str
    created_at: float


Data = bytes | io.BufferedIOBase | AsyncIterable[bytes]


class _AsyncReader(io.RawIOBase):
    """A file-like view of an async iterable of bytes, read from the thread nats-py reads
    files in: each `readinto` waits for the next piece on the event loop."""

    def __init__(self, source: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._source = aiter(source)
        self._loop = loop
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            piece = future.result()
            if piece is None:
                return 0
            self._left = piece
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    async def _next(self) -> bytes | None:
        try:
            return bytes(await anext(self._source))
        except StopAsyncIteration:
            return None


class ArtifactStore:
    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        ttl_s: Callable[[], int],
    ) -> None:
        self._js = js
        self._redis = redis
        self._layout = layout
        self._ttl_s = ttl_s
        self._bucket: tuple[JetStreamContext, ObjectStore] | None = None

    @classmethod
    def of(cls, broker: JetStreamBroker) -> ArtifactStore:
        return cls(
            lambda: broker.js,
            broker.redis,
            lambda: broker.layout,
            lambda: broker.settings.result_ttl_s,
        )

    async def _store(self) -> ObjectStore:
        """The bucket, made on first use with the result lifetime; looked up again after the
        broker reconnected (a bucket handle holds its connection)."""
        js = self._js()
        if self._bucket is None or self._bucket[0] is not js:
            name = self._layout().artifacts_bucket
            try:
                store = await js.object_store(name)
            except BucketNotFoundError:
                config = ObjectStoreConfig(ttl=float(self._ttl_s()), storage=StorageType.FILE)
                store = await js.create_object_store(name, config=config)
            self._bucket = (js, store)
        return self._bucket[1]

    async def put(self, task_id: str, name: str, data: Data, content_type: str) -> Artifact:
        if not ARTIFACT_NAME.fullmatch(name):
            raise ValueError(
                f"artifact name {name!r}: letters, digits, '.', '_' and '-' (at most 128)"
            )
        reader: Any = data
        if isinstance(data, bytes):
            reader = io.BytesIO(data)
        elif not isinstance(data, io.IOBase):
            reader = io.BufferedReader(_AsyncReader(data, asyncio.get_running_loop()))
        info = await (await self._store()).put(
            f"{task_id}/{name}", reader, meta=ObjectMeta(name=f"{task_id}/{name}")
        )
        artifact = Artifact(
            name=name, size=info.size or 0, content_type=content_type, created_at=time.time()
        )
        key = self._layout().artifacts_key(task_id)
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.hset(key, name, artifact.model_dump_json())
            pipe.expire(key, self._ttl_s())
            await pipe.execute()
        return artifact

    async def list(self, task_id: str) -> list[Artifact]:
        raw = await self._redis().hgetall(self._layout().artifacts_key(task_id))
        found = [Artifact.model_validate(orjson.loads(v)) for v in raw.values()]
        return sorted(found, key=lambda a: a.created_at)

    async def get(self, task_id: str, name: str) -> Artifact:
        raw = await self._redis().hget(self._layout().artifacts_key(task_id), name)
        if raw is None:
            raise ArtifactNotFoundError(task_id, name)
        return Artifact.model_validate(orjson.loads(raw))

    async def delete_all(self, task_id: str) -> None:
        """Remove the task's files (its record is being deleted)."""
        found = await self.list(task_id)
        if found:
            store = await self._store()
            for artifact in found:
                with contextlib.suppress(NotFoundError):
                    await store.delete(f"{task_id}/{artifact.name}")
        await self._redis().delete(self._layout().artifacts_key(task_id))

    async def chunks(self, task_id: str, name: str) -> AsyncIterator[bytes]:
        """The object's bytes, chunk by chunk, as JetStream delivers them."""
        store = await self._store()
        try:
            info = await store.get_info(f"{task_id}/{name}")
        except NotFoundError:
            raise ArtifactNotFoundError(task_id, name) from None
        if not info.size:
            return
        subject = f"$O.{self._layout().artifacts_bucket}.C.{info.nuid}"  # the object's chunks
        sub = await self._js().subscribe(subject, ordered_consumer=True)
        try:
            while True:
                msg = await sub.next_msg(timeout=30)
                yield msg.data
                if msg.metadata.num_pending == _NO_PENDING:
                    return
        finally:
            await sub.unsubscribe()
