"""Tasks fetched ahead of free room while tasks run long, so a slot that frees starts the next
task at once instead of waiting for a pull (`InFlight.spare` says how many).

A spare message is only fetched: not admitted, never marked STARTED nor counted as running, so
the records stay true. It goes back to the queue (a nak: delivered again at once, to any worker)
when it was not taken within `hold_s` (well inside its `ack_wait`), when the queue is paused and
when the fetch loop stops.
"""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg

from src.engine.worker.pulls import nak_all


class Spare:
    def __init__(self, hold_s: float) -> None:
        self.msgs: list[Msg] = []
        self.dry = False  # the queue had no more to give: no top-up until a slot frees
        self._hold_s = hold_s
        self._since = 0.0  # when the oldest was fetched (event-loop time)

    def add(self, msgs: list[Msg]) -> None:
        if msgs and not self.msgs:
            self._since = asyncio.get_running_loop().time()
        self.msgs.extend(msgs)

    def take(self, n: int) -> list[Msg]:
        """The `n` fetched first."""
        taken, self.msgs = self.msgs[:n], self.msgs[n:]
        return taken

    def hold_left(self) -> float | None:
        """Seconds until what is held goes back; None when nothing is held."""
        if not self.msgs:
            return None
        return max(0.0, self._since + self._hold_s - asyncio.get_running_loop().time())

    async def hand_back(self) -> None:
        """Back to the queue; none fetched ahead again until a slot frees (else a worker
        busy for long would fetch the same tasks and hand them back every `hold_s`)."""
        msgs, self.msgs = self.msgs, []
        self.dry = True
        await nak_all(msgs)
