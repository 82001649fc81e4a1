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
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskiq.message import TaskiqMessage

if TYPE_CHECKING:
    from src.tasks.jetstream import JetStreamBroker

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}

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


class LimitError(ValueError):
    """A `rate_limit` or `concurrency` label that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    per_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(str(text))
        if not match:
            raise LimitError(f"rate_limit {text!r} must look like '100/m', '5/s' or '10/2h'")
        count, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
        if count < 1 or multiple < 1:
            raise LimitError(f"rate_limit {text!r} must allow at least 1 per window")
        return cls(count, float(multiple * _UNIT_S[unit]))


@dataclass(frozen=True, slots=True)
class Limits:
    rate: Rate | None
    concurrency: int | None
    key: str | None

    @classmethod
    def of(cls, message: TaskiqMessage, local: dict[str, Any]) -> Limits | None:
        labels = {**local, **message.labels}
        rate = labels.get("rate_limit")
        concurrency = labels.get("concurrency")
        if rate is None and concurrency is None:
            return None
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise LimitError(f"concurrency must be a positive integer, got {concurrency!r}")
        key_arg = labels.get("limit_key")
        key = None
        if key_arg is not None:
            if key_arg not in message.kwargs:
                raise LimitError(f"limit_key {key_arg!r} is not a keyword argument of the call")
            key = str(message.kwargs[key_arg])
        return cls(Rate.parse(rate) if rate is not None else None, concurrency, key)


class Throttle:
    def __init__(self, broker: JetStreamBroker) -> None:
        self._broker = broker
        self._sha: str | None = None

    def _key(self, kind: str, message: TaskiqMessage, limits: Limits, suffix: str = "") -> str:
        scope = f"{message.task_name}:{limits.key}" if limits.key is not None else message.task_name
        return f"{self._broker.layout.redis_prefix}:{kind}:{scope}{suffix}"

    async def admit(self, message: TaskiqMessage, limits: Limits) -> float | None:
        """None if the task may start now; otherwise seconds to wait before trying again."""
        redis = self._broker.results.redis
        now = time.time()
        if limits.concurrency is not None:
            expiry = now + self._hold_s
            if self._sha is None:
                self._sha = await redis.script_load(_ACQUIRE)
            granted = await redis.evalsha(
                self._sha,
                1,
                self._key("running", message, limits),
                now,
                expiry,
                limits.concurrency,
                message.task_id,
            )
            if not granted:
                return self._broker.settings.throttle_retry_s
        if limits.rate is not None:
            window = math.floor(now / limits.rate.per_s)
            key = self._key("rate", message, limits, f":{window}")
            async with redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, math.ceil(limits.rate.per_s) + 1)
                count, _ = await pipe.execute()
            if int(count) > limits.rate.count:
                await self.release(message, limits)
                return (window + 1) * limits.rate.per_s - now + 0.01
            message.labels["rate_window"] = window  # which window this start counted in
        return None

    @property
    def _hold_s(self) -> float:
        return max(self._broker.settings.ack_wait_s * 2, 10.0)

    async def renew(self, holders: list[tuple[TaskiqMessage, Limits]]) -> None:
        redis = self._broker.results.redis
        expiry = time.time() + self._hold_s
        async with redis.pipeline(transaction=False) as pipe:
            for message, limits in holders:
                pipe.zadd(self._key("running", message, limits), {message.task_id: expiry}, xx=True)
            await pipe.execute()

    async def release(self, message: TaskiqMessage, limits: Limits) -> None:
        if limits.concurrency is not None:
            await self._broker.results.redis.zrem(
                self._key("running", message, limits), message.task_id
            )
