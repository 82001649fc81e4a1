"""The workflow hash in Redis and the scripts that change it atomically.

A step's outcome is written once (`HSETNX`), with its return value, by the same script call
that reads the whole hash back: the caller decides what comes next from a snapshot no other
writer can have half-changed. The workflow's state leaves RUNNING once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from src.engine.core.layout import Layout
from src.engine.state.listing import decode_cursor, encode_cursor
from src.engine.workflows.join import RUNNING, Snapshot

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HSETNX', KEYS[1], 's:' .. ARGV[1], ARGV[2]) == 1 and ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
"""
# KEYS: hash, index of all, index of RUNNING, index of the new state
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'failed_step', ARGV[3]) end
local score = redis.call('ZSCORE', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
if score then redis.call('ZADD', KEYS[4], score, ARGV[4]) end
return 1
"""
# KEYS: hash, index of all, index of RUNNING. ARGV: id, spec, created_at, ttl_s, score, trim.
# Once: a second call (the start's safety net, `engine.py`) changes nothing.
_CREATE = """
if redis.call('HSETNX', KEYS[1], 'spec', ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'created_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], ARGV[5], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[6])
end
return 1
"""
_MARK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], 'd:' .. ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'state')
"""


class WorkflowStore:
    def __init__(
        self, redis: Callable[[], Redis], layout: Callable[[], Layout], ttl_s: Callable[[], int]
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._ttl_s = ttl_s

    def _key(self, workflow_id: str) -> str:
        return self._layout().workflow_key(workflow_id)

    async def create(self, workflow_id: str, spec: bytes | str, created_at: float) -> bool:
        """Store the workflow RUNNING, and list it; False if it was stored already."""
        layout, ttl_s = self._layout(), self._ttl_s()
        done = await self._redis().eval(
            _CREATE,
            3,
            self._key(workflow_id),
            layout.workflows_index_key(),
            layout.workflows_index_key(RUNNING),
            workflow_id,
            spec,
            created_at,
            ttl_s,
            int(created_at * 1_000_000),
            int((time.time() - ttl_s) * 1_000_000),
        )
        return bool(done)

    async def snapshot(self, workflow_id: str) -> Snapshot | None:
        raw = await self._redis().hgetall(self._key(workflow_id))
        return Snapshot.of(raw) if raw else None

    async def record(
        self, workflow_id: str, step: str, outcome: dict[str, Any], value: Any
    ) -> Snapshot | None:
        """Write `step`'s outcome unless one is there; the hash after it, None if unknown."""
        raw = await self._redis().eval(
            _RECORD,
            1,
            self._key(workflow_id),
            step,
            orjson.dumps(outcome),
            orjson.dumps(value) if outcome["state"] == "SUCCESS" else b"",
        )
        if not raw:
            return None
        return Snapshot.of(dict(zip(raw[::2], raw[1::2], strict=True)))

    async def mark_dispatched(self, workflow_id: str, step: str, task_id: str) -> str | None:
        """Note the step's task id; returns the workflow's state now."""
        state = await self._redis().eval(_MARK, 1, self._key(workflow_id), step, task_id)
        return state.decode() if isinstance(state, bytes) else state

    async def finish(self, workflow_id: str, state: str, failed_step: str | None) -> bool:
        """Move the workflow out of RUNNING (once); False if it already was."""
        layout = self._layout()
        done = await self._redis().eval(
            _FINISH,
            4,
            self._key(workflow_id),
            layout.workflows_index_key(),
            layout.workflows_index_key(RUNNING),
            layout.workflows_index_key(state),
            state,
            time.time(),
            failed_step or "",
            workflow_id,
        )
        return bool(done)

    async def page(
        self, state: str | None, limit: int, cursor: str | None
    ) -> tuple[list[tuple[str, Snapshot]], str | None]:
        """Up to `limit` workflows (of `state`), newest first, after `cursor`; the cursor
        for the next page (None at the end). Expired ones leave the index as they are met."""
        index = self._layout().workflows_index_key(state or "")
        after = decode_cursor(cursor)
        found: list[tuple[str, Snapshot]] = []
        redis = self._redis()
        while len(found) < limit:
            high = "+inf" if after is None else str(after[0])
            chunk: Any = await redis.zrevrangebyscore(
                index, high, "-inf", start=0, num=limit * 2 + 8, withscores=True
            )
            entries = [(int(score), member.decode()) for member, score in chunk]
            fresh = [(s, m) for s, m in entries if after is None or (s, m) < after]
            if not fresh:
                return found, None
            async with redis.pipeline(transaction=False) as pipe:
                for _, workflow_id in fresh:
                    pipe.hgetall(self._key(workflow_id))
                raws = await pipe.execute()
            gone = []
            for (score, workflow_id), raw in zip(fresh, raws, strict=True):
                after = (score, workflow_id)
                if not raw:
                    gone.append(workflow_id)
                    continue
                found.append((workflow_id, Snapshot.of(raw)))
                if len(found) == limit:
                    break
            if gone:
                await redis.zrem(index, *gone)
            if len(found) < limit and len(entries) < limit * 2 + 8:
                return found, None
        assert after is not None
        return found, encode_cursor(after)
