"""The process's Redis client: one pool, made when the broker starts and closed when it stops.

Everything that talks to Redis gets it from here (as a provider, `connection()`), so one place
decides timeouts, retries and the pool size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.config import Settings
from src.engine.core.errors import RedisNotStartedError
from src.engine.core.redis_url import is_sentinel, parse_sentinel

# Retries of a command on a fresh connection: a restart needs a few; under Sentinel, with
# back-off capped at 1 s, more of them ride out the seconds a failover takes.
_RETRIES = 3
_SENTINEL_RETRIES = 8


def redis_client(settings: Settings) -> tuple[Redis, list[Redis]]:
    """A Redis client that fails fast, so a Redis outage shows up as an error, not a hang.

    With a `redis+sentinel://` URL the client asks the sentinels for the primary and follows
    it through a failover: a command that finds the old primary gone (or read-only) is retried
    on the new one. Returned beside the client: the clients of the sentinels it asks, which
    must be closed with it.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_timeout_s,
        "socket_timeout": settings.redis_timeout_s,
        "health_check_interval": 30,
        # A pooled connection closed by a restart or a failover fails once; retry on a fresh
        # one (after a failover the pool asks the sentinels for the new primary first).
        "retry": Retry(
            ExponentialBackoff(cap=1.0, base=0.05),
            retries=_SENTINEL_RETRIES if is_sentinel(settings.redis_url) else _RETRIES,
        ),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ReadOnlyError],
    }
    if is_sentinel(settings.redis_url):
        target = parse_sentinel(settings.redis_url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(target.sentinels),
            sentinel_kwargs={
                "socket_connect_timeout": settings.redis_timeout_s,
                "socket_timeout": settings.redis_timeout_s,
            },
        )
        primary: Redis = sentinel.master_for(
            target.service,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.tls,
            **options,
        )
        return primary, list(sentinel.sentinels)
    # A blocking pool: a burst of callers waits for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        **options,
    )
    return Redis.from_pool(pool), []


class RedisConnection:
    """Holds the client between `open()` and `close()`; calling it returns the client."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._client: Redis | None = None
        self._helpers: list[Redis] = []

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def open(self) -> None:
        if self._client is None:
            self._client, self._helpers = redis_client(self._settings())

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            helpers, self._helpers = self._helpers, []
            for each in (client, *helpers):
                await each.aclose()

    def __call__(self) -> Redis:
        if self._client is None:
            raise RedisNotStartedError("Redis is not connected: call broker.startup() first")
        return self._client
