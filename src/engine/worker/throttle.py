"""Rate and concurrency limits per task name (optionally per argument value), across all workers.

    @register_task(rate_limit="100/m")                         # at most 100 starts a minute
    @register_task(concurrency=5)                              # at most 5 running at once
    @register_task(concurrency=1, limit_key="customer_id")     # ...per value of that argument

A task over its limit is not failed: its message is handed back with a delay (until the
window ends, or `TASKJET_THROTTLE_RETRY_S` for concurrency) and starts later. The counters live
in Redis, shared by every worker process. Rate windows are fixed, aligned to the clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from src.config import Settings
from src.engine.core.labels import TaskLabels
from src.engine.core.layout import Layout

# Holders are kept with an expiry, so a crashed worker's slot frees itself; running tasks
# renew theirs on every lease heartbeat.
_ACQUIRE = """
local key, now, expiry = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local limit, holder = tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZSCORE', key, holder) or redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, expiry, holder)
  redis.call('PEXPIRE', key, math.ceil((tonumber(expiry) - now) * 1000))
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Holder:
    """A running task holding a concurrency slot."""

    task_name: str
    task_id: str
    scope: str | None


class Throttle:
    def __init__(
        self,
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        settings: Callable[[], Settings],
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._settings = settings
        self._sha: str | None = None

    def _key(self, kind: str, task_name: str, scope: str | None, suffix: str = "") -> str:
        named = f"{task_name}:{scope}" if scope is not None else task_name
        return f"{self._layout().redis_prefix}:{kind}:{named}{suffix}"

    async def admit(self, holder: Holder, labels: TaskLabels) -> tuple[float | None, int | None]:
        """(None, window) if the task may start now, the rate window its start counted in (or
        None without a rate limit); otherwise (seconds to wait before trying again, None)."""
        redis = self._redis()
        now = time.time()
        if labels.concurrency is not None:
            if self._sha is None:
                self._sha = await redis.script_load(_ACQUIRE)
            granted = await redis.evalsha(
                self._sha,
                1,
                self._key("running", holder.task_name, holder.scope),
                now,
                now + self._hold_s,
                labels.concurrency,
                holder.task_id,
            )
            if not granted:
                return self._settings().throttle_retry_s, None
        window = None
        if labels.rate is not None:
            window = math.floor(now / labels.rate.per_s)
            key = self._key("rate", holder.task_name, holder.scope, f":{window}")
            async with redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, math.ceil(labels.rate.per_s) + 1)
                count, _ = await pipe.execute()
            if int(count) > labels.rate.count:
                if labels.concurrency is not None:
                    await self.release(holder)
                return (window + 1) * labels.rate.per_s - now + 0.01, None
        return None, window

    @property
    def _hold_s(self) -> float:
        return max(self._settings().ack_wait_s * 2, 10.0)

    async def renew(self, holders: Sequence[Holder]) -> None:
        expiry = time.time() + self._hold_s
        async with self._redis().pipeline(transaction=False) as pipe:
            for h in holders:
                pipe.zadd(self._key("running", h.task_name, h.scope), {h.task_id: expiry}, xx=True)
            await pipe.execute()

    async def release(self, holder: Holder) -> None:
        await self._redis().zrem(
            self._key("running", holder.task_name, holder.scope), holder.task_id
        )
