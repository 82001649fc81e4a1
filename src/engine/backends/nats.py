"""The process's NATS connection: fail fast at first, then reconnect forever."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client as NATS
from nats.errors import FlushTimeoutError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from src.config import Settings
from src.engine.core.errors import NatsUnavailableError

logger = logging.getLogger("taskjet.nats")

_RECONNECT_WAIT_S = 0.5
# A connection that answers no PING for this long is taken for dead and replaced (nats-py's
# default, 2 min x 2, leaves a half-open connection unnoticed for minutes).
_PING_INTERVAL_S = 10
_MAX_OUTSTANDING_PINGS = 3
_T = TypeVar("_T")


async def connect_nats(settings: Settings) -> NATS:
    """Connect for the life of a service: a bad address fails within `connect_timeout_s`, and
    once connected, the client outlives any NATS restart."""
    nc = NATS()

    async def disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            logger.warning("NATS disconnected; reconnecting")

    async def reconnected() -> None:
        logger.info("NATS reconnected to %s", nc.connected_url.netloc if nc.connected_url else "?")

    async def error(exc: Exception) -> None:
        logger.warning("NATS: %s", exc)

    try:
        await nc.connect(
            servers=settings.nats_servers,
            connect_timeout=settings.connect_timeout_s,  # type: ignore[arg-type]  # float works
            allow_reconnect=True,
            # Bounded for the first connect, so bad configuration fails within seconds...
            max_reconnect_attempts=max(1, int(settings.connect_timeout_s / _RECONNECT_WAIT_S)),
            reconnect_time_wait=_RECONNECT_WAIT_S,  # type: ignore[arg-type]
            ping_interval=_PING_INTERVAL_S,
            max_outstanding_pings=_MAX_OUTSTANDING_PINGS,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
    except (TimeoutError, NoServersError, OSError) as exc:
        raise NatsUnavailableError(
            f"cannot connect to NATS at {settings.nats_url}: {exc or type(exc).__name__}"
        ) from exc
    # ...and unbounded afterwards.
    nc.options["max_reconnect_attempts"] = -1
    return nc


async def flush(nc: NATS, timeout_s: float = 10.0) -> None:
    """Wait until the server has everything published so far (one PING answered by a PONG);
    `FlushTimeoutError` after `timeout_s`.

    Not `nc.flush(timeout)` (nor `nc.rtt`): on a timeout they cancel their PONG's future, and
    when that PONG does arrive (a frozen node thawing, a stalled VM) completing the cancelled
    future raises inside nats-py's read loop, which stops for good while the client still
    reports itself connected: a worker that never hears of another task. Here the future is
    left for the late PONG to complete, and a cancelled caller leaves it alone too.
    """
    if not nc.is_connected:
        raise FlushTimeoutError
    pong: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    await nc._send_ping(pong)
    done, _ = await asyncio.wait({pong}, timeout=timeout_s)
    if not done:
        raise FlushTimeoutError


# Answers that mean "not now" (a leader being elected, a node restarting), not "no".
_PASSING = (NatsTimeoutError, NoRespondersError, NoStreamResponseError, ServiceUnavailableError)


async def patiently(call: Callable[[], Awaitable[_T]], retry_s: float, what: str) -> _T:
    """`call()`, again while JetStream answers "not now" (or not at all), for up to `retry_s`:
    in a cluster, a few seconds without a leader are normal."""
    deadline = time.monotonic() + retry_s
    pause_s = 0.1
    while True:
        try:
            return await call()
        except _PASSING as exc:
            if time.monotonic() + pause_s > deadline:
                raise
            logger.warning("%s: no answer yet (%r); asking again", what, exc)
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 2.0)
