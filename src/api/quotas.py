"""What one API key may ask of one server process: task submissions per second, and the queues
it may send tasks to.

Submissions are limited per key by a token bucket (`TASKJET_API_SUBMIT_RATE`, e.g. `500/s`:
up to 500 at once, refilled at 500 a second); a key over it gets 429 with `Retry-After`. The
buckets live in the process, so with N server replicas a key may submit up to N times the rate.
Tasks may go only to queues some worker is meant to consume (`TASKJET_API_QUEUES`, by default
the default queue, `TASKJET_QUEUES` and the queues registered tasks name), so a client cannot
park work where nothing will ever take it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from src.api.auth import Caller
from src.api.errors import TooManyRequestsError, UnprocessableError
from src.config import Settings
from src.engine.core.labels import QUEUE, Rate

# Buckets of keys not seen for this long are dropped (they would be full again anyway).
_FORGET_AFTER_S = 600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class SubmitQuota:
    """A token bucket per API key."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._parsed: tuple[Settings | None, Rate | None] = (None, None)
        self._buckets: dict[str, _Bucket] = {}
        self._swept_at = time.monotonic()

    def take(self, caller: Caller) -> None:
        """One submission for `caller`, or `TooManyRequestsError` with the wait."""
        rate = self._rate()
        if rate is None:
            return
        now = time.monotonic()
        per_s = rate.count / rate.per_s
        bucket = self._buckets.get(caller.key_id)
        if bucket is None:
            bucket = self._buckets[caller.key_id] = _Bucket(float(rate.count), now)
        bucket.tokens = min(float(rate.count), bucket.tokens + (now - bucket.at) * per_s)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait_s = (1.0 - bucket.tokens) / per_s
            error = TooManyRequestsError(
                f"this key may submit {rate.count} tasks per {rate.per_s:g}s "
                "(TASKJET_API_SUBMIT_RATE); try again later",
                {"retry_after_s": round(wait_s, 3)},
            )
            error.headers = {"Retry-After": str(max(1, math.ceil(wait_s)))}
            raise error
        bucket.tokens -= 1.0
        self._sweep(now)

    def _rate(self) -> Rate | None:
        """`TASKJET_API_SUBMIT_RATE`, parsed once per settings object (they are frozen)."""
        settings = self._settings()
        parsed_for, rate = self._parsed
        if parsed_for is not settings:
            rate = settings.submit_rate
            self._parsed = settings, rate
        return rate

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < _FORGET_AFTER_S:
            return
        self._swept_at = now
        for key_id in [k for k, b in self._buckets.items() if now - b.at > _FORGET_AFTER_S]:
            del self._buckets[key_id]


def allowed_queues(settings: Settings, declared: Iterable[str]) -> set[str]:
    """The queues the API may send tasks to."""
    if settings.api_queue_names:
        return set(settings.api_queue_names)
    return {settings.default_queue, *settings.queue_names, *declared}


def declared_queues(labels: Iterable[dict[str, object]]) -> set[str]:
    """The queues registered tasks name (`queue_name=` on the decorator)."""
    return {str(found) for task_labels in labels if (found := task_labels.get(QUEUE))}


def check_queue(queue: str, allowed: set[str]) -> None:
    if queue not in allowed:
        raise UnprocessableError(
            f"queue {queue!r} is not one the API may send tasks to "
            f"(TASKJET_API_QUEUES: {', '.join(sorted(allowed))})",
            [{"loc": ["body", "options", "queue"], "msg": "queue not allowed"}],
        )
