"""The worker's verdict on a delivery once its run is over: decided here, in one place.

What happened during the run is recorded on the `Delivery` as facts (the result could not be
saved; the middleware chose a retry after some seconds; the task is given up on with a dead
letter). `verdict` turns those facts into the single action that settles the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from src.engine.worker.delivery import Delivery

Action = Literal["ack", "retry", "redeliver", "dead_letter"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """ack: done, result saved. retry: nak, run again after `delay_s` (a retried failure).
    redeliver: nak after `delay_s` because the outcome could not be saved. dead_letter: write
    the dead letter, then term."""

    action: Action
    delay_s: float | None = None


def verdict(delivery: Delivery, redelivery_delay_s: float) -> Verdict:
    # An outcome that was not saved trumps everything: nothing may be acked or dropped then.
    if delivery.save_failed:
        return Verdict("redeliver", redelivery_delay_s)
    if delivery.retry_in_s is not None:
        return Verdict("retry", delivery.retry_in_s)
    if delivery.dead is not None:
        return Verdict("dead_letter")
    return Verdict("ack")
