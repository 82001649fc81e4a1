"""Tasks the tracing and log tests send to real worker processes."""

from __future__ import annotations

import logging

from src.tasks.broker import broker, register_task

logger = logging.getLogger("tests.observed")


@register_task(api=True, retry_on_error=True, max_retries=2, retry_backoff=0.1, retry_jitter="none")
async def traced(key: str) -> str:
    """Logs a line, and on its first run sends `child` and fails (so it is retried)."""
    logger.warning("traced task running for %s", key)
    if int(await broker.results.redis.incr(f"test-traced:{key}")) == 1:
        await child.kiq(key)
        raise RuntimeError("first run fails")
    return key


@register_task()
async def child(key: str) -> str:
    logger.warning("child task running for %s", key)
    return key


@register_task()
async def broken(key: str) -> None:
    """Logs an exception and fails for good."""
    try:
        raise ValueError(f"broken {key}")
    except ValueError:
        logger.exception("broken task failed for %s", key)
        raise
