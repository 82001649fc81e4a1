"""asyncio helpers the engine's stages share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_all(tasks: Iterable[asyncio.Task[object]], poll_s: float = 0.1) -> None:
    """Cancel `tasks` and wait until every one is done.

    A cancellation that lands inside a Redis call can be swallowed by the client, so a task is
    cancelled again until it is really gone, instead of being waited for forever.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=poll_s)
