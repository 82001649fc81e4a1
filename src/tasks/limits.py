"""The soft time limit: cancel the task's coroutine first, give it the chance to clean up.

At `soft_timeout` seconds the running task is cancelled: it sees `asyncio.CancelledError` at its
next `await` and may catch it to clean up or return a partial result. If it lets the
cancellation through, the task fails with `SoftTimeLimitExceeded`. The hard `timeout` (taskiq's
label) still applies afterwards, so a task that ignores the cancellation is stopped anyway.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from src.tasks.delivery import current_delivery
from src.tasks.errors import SoftTimeLimitExceeded

_R = TypeVar("_R")
SOFT_TIMEOUT_MESSAGE = "taskjet soft time limit"


def with_soft_timeout(
    func: Callable[..., Coroutine[Any, Any, _R]],
) -> Callable[..., Coroutine[Any, Any, _R]]:
    """Wrap a task function; a no-op unless the running delivery has a `soft_timeout` label."""

    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> _R:
        delivery = current_delivery.get()
        soft_s = delivery.message.labels.get("soft_timeout") if delivery else None
        if not soft_s:
            return await func(*args, **kwargs)
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel(SOFT_TIMEOUT_MESSAGE)

        timer = asyncio.get_running_loop().call_later(float(soft_s), expire)
        try:
            return await func(*args, **kwargs)
        except asyncio.CancelledError:
            if fired and task.cancelling() == 1:
                task.uncancel()
                raise SoftTimeLimitExceeded.after(float(soft_s)) from None
            raise
        finally:
            timer.cancel()
            if fired and task.cancelling() and not task.done():
                # The task caught the soft cancellation and finished on its own terms.
                task.uncancel()

    return run
