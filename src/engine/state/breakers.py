"""Circuit breakers shared by every worker process: their state lives in Redis.

A breaker is a hash (`<prefix>:breaker:<name>`: state, until when it stays open, until when a
half-open trial holds it, its settings) and a sorted set of recent failure times. Each
transition is one Lua script, so two workers never both decide it; times come from the Redis
server's clock (`TIME`), so workers' clocks may disagree:

- `enter`: closed lets the call through; open fails it fast with the time left; once the open
  period is over the breaker turns half-open and lets exactly one trial call through (a trial
  whose worker died is given up after `trial_ms`, and the next caller becomes the trial);
- `failure`: closed counts it in the window and opens at the threshold; a failed trial opens
  the breaker again for another open period;
- `success`: a successful trial closes the breaker and forgets its failures;
- `reset`: closed now, failures forgotten (the admin's reset).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from src.engine.core.layout import Layout

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: hash, index. ARGV: name, trial_ms, threshold, window_ms, open_ms, register (0/1)
_ENTER = (
    _NOW
    + """
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'threshold', ARGV[3], 'window_ms', ARGV[4], 'open_ms', ARGV[5])
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {'closed', 0} end
if state == 'open' then
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if now < open_until then return {'open', open_until - now} end
else
  local trial_until = tonumber(redis.call('HGET', KEYS[1], 'trial_until') or '0')
  if now < trial_until then return {'open', trial_until - now} end
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'trial_until', now + tonumber(ARGV[2]),
  'changed_at', now)
return {'trial', 0}
"""
)

# KEYS: hash, failures. ARGV: threshold, window_ms, open_ms, trial (0/1), failure id
_FAILURE = (
    _NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local function open()
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[3]),
    'opened_at', now, 'changed_at', now, 'trial_until', 0)
  redis.call('DEL', KEYS[2])
  return 'open'
end
if state == 'half_open' then
  if ARGV[4] == '1' then return open() end
  return state
end
if state == 'open' then return state end
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('PEXPIRE', KEYS[2], window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return open() end
return 'closed'
"""
)

# KEYS: hash, failures
_SUCCESS = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'state') ~= 'half_open' then
  return redis.call('HGET', KEYS[1], 'state') or 'closed'
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'trial_until', 0, 'changed_at', now)
redis.call('DEL', KEYS[2])
return 'closed'
"""
)

# KEYS: hash, failures
_RESET = (
    _NOW
    + """
redis.call('HSET', KEYS[1], 'state', 'closed', 'open_until', 0, 'trial_until', 0,
  'changed_at', now)
redis.call('DEL', KEYS[2])
return 'closed'
"""
)

Verdict = Literal["closed", "open", "trial"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens, and for how long."""

    failure_threshold: int = 5
    window_s: float = 60.0
    open_s: float = 30.0
    trial_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if min(self.window_s, self.open_s, self.trial_timeout_s) <= 0:
            raise ValueError("window_s, open_s and trial_timeout_s must be positive")


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A breaker as the API shows it. `half_open` also stands for an open breaker whose open
    period is over: the next call will be its trial."""

    name: str
    state: str
    failures: int
    failure_threshold: int | None
    window_s: float | None
    open_s: float | None
    opened_at: float | None
    retry_in_s: float
    open_until: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__slots__}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BreakerStore:
    """The breakers' shared state; every change is one script call."""

    def __init__(self, redis: Callable[[], Redis], layout: Callable[[], Layout]) -> None:
        self._redis = redis
        self._layout = layout
        self._scripts: dict[tuple[int, str], AsyncScript] = {}

    async def _run(self, script: str, keys: list[str], *args: Any) -> Any:
        """Run a script by its digest (EVALSHA; loaded again after a Redis restart)."""
        redis = self._redis()
        found = self._scripts.get((id(redis), script))
        if found is None:
            found = self._scripts[(id(redis), script)] = redis.register_script(script)
        return await found(keys=keys, args=list(args))

    def _keys(self, name: str) -> list[str]:
        key = self._layout().breaker_key(name)
        return [key, f"{key}:failures"]

    async def enter(
        self, name: str, policy: BreakerPolicy, register: bool
    ) -> tuple[Verdict, float]:
        """("closed", 0), ("trial", 0), or ("open", seconds until a trial may run)."""
        hash_key = self._keys(name)[0]
        verdict, left_ms = await self._run(
            _ENTER,
            [hash_key, self._layout().breakers_key],
            name,
            _ms(policy.trial_timeout_s),
            policy.failure_threshold,
            _ms(policy.window_s),
            _ms(policy.open_s),
            int(register),
        )
        return _text(verdict), int(left_ms) / 1000  # type: ignore[return-value]

    async def failure(self, name: str, policy: BreakerPolicy, trial: bool) -> str:
        """Count a failed call; the breaker's state after it."""
        result = await self._run(
            _FAILURE,
            self._keys(name),
            policy.failure_threshold,
            _ms(policy.window_s),
            _ms(policy.open_s),
            int(trial),
            uuid.uuid4().hex,
        )
        return _text(result)

    async def success(self, name: str) -> str:
        """A successful trial closes the breaker (other successes change nothing)."""
        return _text(await self._run(_SUCCESS, self._keys(name)))

    async def names(self) -> list[str]:
        return sorted(_text(n) for n in await self._redis().smembers(self._layout().breakers_key))

    async def reset(self, name: str | None = None) -> list[str]:
        """Close one breaker (or all of them); the names closed. An unknown name closes none."""
        known = await self.names()
        chosen = known if name is None else [n for n in known if n == name]
        for each in chosen:
            await self._run(_RESET, self._keys(each))
        return chosen

    async def states(self) -> list[BreakerState]:
        """Every breaker's state, by name: for health pages and the dashboard."""
        names = await self.names()
        if not names:
            return []
        redis = self._redis()
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                key, failures = self._keys(name)
                pipe.hgetall(key)
                pipe.zcard(failures)
            pipe.time()
            replies = await pipe.execute()
        seconds, micros = replies[-1]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return [
            _state(name, replies[2 * i], int(replies[2 * i + 1]), now_ms)
            for i, name in enumerate(names)
        ]


def _state(name: str, raw: dict[Any, Any], failures: int, now_ms: int) -> BreakerState:
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(field: str) -> float | None:
        return float(fields[field]) if field in fields else None

    state = fields.get("state", "closed")
    left_ms = 0.0
    if state == "open":
        left_ms = max(0.0, (number("open_until") or 0) - now_ms)
        state = "open" if left_ms > 0 else "half_open"
    elif state == "half_open":
        left_ms = max(0.0, (number("trial_until") or 0) - now_ms)
    threshold, window_ms, open_ms = number("threshold"), number("window_ms"), number("open_ms")
    opened_ms = number("opened_at")
    return BreakerState(
        name=name,
        state=state,
        failures=failures,
        failure_threshold=int(threshold) if threshold is not None else None,
        window_s=window_ms / 1000 if window_ms is not None else None,
        open_s=open_ms / 1000 if open_ms is not None else None,
        opened_at=opened_ms / 1000 if opened_ms and state != "closed" else None,
        retry_in_s=round(left_ms / 1000, 3),
        open_until=(number("open_until") or 0) / 1000 if state == "open" else None,
    )
