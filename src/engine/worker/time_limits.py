"""Limits on a running task's function: the soft time limit and cancellation.

At `soft_timeout` seconds the running task is cancelled: it sees `asyncio.CancelledError` at its
next `await` and may catch it to clean up or return a partial result. If it lets the
cancellation through, the task fails with `SoftTimeLimitExceeded`. The hard `timeout` (taskiq's
label) still applies afterwards, so a task that ignores the cancellation is stopped anyway.

A cancel request (see `control.py`) works the same way and ends the task with
`TaskCancelledError`, which is never retried.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from src.engine.core.errors import SoftTimeLimitExceeded, TaskCancelledError
from src.engine.worker.delivery import current_delivery

_R = TypeVar("_R")
SOFT_TIMEOUT_MESSAGE = "taskjet soft time limit"


def with_limits(
    func: Callable[..., Coroutine[Any, Any, _R]],
) -> Callable[..., Coroutine[Any, Any, _R]]:
    """Wrap a task function; costs one context lookup when no limit applies."""

    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> _R:
        delivery = current_delivery.get()
        if delivery is None:  # called directly, not by a worker
            return await func(*args, **kwargs)
        if delivery.cancel_requested:
            raise TaskCancelledError.before_start()
        task = asyncio.current_task()
        assert task is not None
        delivery.body = task
        soft_s = delivery.labels.soft_timeout_s or 0.0
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel(SOFT_TIMEOUT_MESSAGE)

        loop = asyncio.get_running_loop()
        timer = loop.call_later(soft_s, expire) if soft_s else None
        began = loop.time()
        try:
            return await func(*args, **kwargs)
        except asyncio.CancelledError:
            if delivery.cancel_requested and task.cancelling() <= 1:
                task.uncancel()
                raise TaskCancelledError.while_running() from None
            if fired and task.cancelling() == 1:
                task.uncancel()
                raise SoftTimeLimitExceeded.after(soft_s) from None
            raise
        finally:
            delivery.body = None
            delivery.returned(loop.time() - began)
            if timer is not None:
                timer.cancel()
            if fired and task.cancelling() and not task.done():
                # The task caught the soft cancellation and finished on its own terms.
                task.uncancel()

    return run
