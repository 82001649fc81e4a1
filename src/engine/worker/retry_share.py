"""Retry storms never starve new work: redeliveries get at most a share of what a worker takes.

A retry is its message handed back with a delay; once the delay is over, JetStream offers
redeliveries before messages never delivered, so many tasks failing at once (an outside service
down) would fill every free slot with retries while new tasks wait. Each fetch loop therefore
keeps a window of the messages it recently took: while the consumer has messages never delivered
(`num_pending` of the batch), a redelivery that would push the window's share of redeliveries
above `TASKJET_RETRY_SHARE` is handed back for `DEFER_S` before it is admitted, so no attempt
is counted against it (attempts are counted on admission, see `admission.py`). With nothing new
waiting, redeliveries take all the room.
"""

from __future__ import annotations

import logging
from collections import deque

from nats.aio.msg import Msg

logger = logging.getLogger("taskjet.fetch")

DEFER_S = 0.5
_WINDOW = 100  # messages taken that the share is measured over


def redelivered(msg: Msg) -> bool:
    return int(msg.metadata.num_delivered) > 1


class RetryShare:
    """One fetch loop's window of recently taken messages (True: a redelivery)."""

    def __init__(self, share: float) -> None:
        self._share = share
        self._taken: deque[bool] = deque(maxlen=_WINDOW)

    def split(self, msgs: list[Msg]) -> tuple[list[Msg], list[Msg]]:
        """The messages to admit now, and the redeliveries to hand back for later."""
        new_waiting = any(int(m.metadata.num_pending) > 0 for m in msgs) or any(
            not redelivered(m) for m in msgs
        )
        self._taken.extend(False for m in msgs if not redelivered(m))  # they make room
        later: list[Msg] = []
        for msg in msgs:
            if redelivered(msg):
                if new_waiting and self._over_share():
                    later.append(msg)
                else:
                    self._taken.append(True)
        held = {id(m) for m in later}
        return [m for m in msgs if id(m) not in held], later

    def _over_share(self) -> bool:
        """Whether one more redelivery would put the window over the share."""
        return (sum(self._taken) + 1) / (len(self._taken) + 1) > self._share


async def hold_back(share: RetryShare, msgs: list[Msg]) -> list[Msg]:
    """Hand back the redeliveries over the share (not counted as attempts); the rest to admit."""
    keep, later = share.split(msgs)
    if later:
        logger.debug("new tasks waiting: %d retries offered again in %.1fs", len(later), DEFER_S)
    for msg in later:
        try:
            await msg.nak(delay=DEFER_S)
        except Exception as exc:  # it comes back after ack_wait anyway
            logger.warning("could not hand back message on %s: %r", msg.subject, exc)
    return keep
