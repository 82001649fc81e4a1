"""Retry policy: whether a failure is retried, and after how long.

The policy comes from the task's labels (`TaskLabels.retry`: `retry_on_error`, `max_retries`,
`retry_backoff`, `retry_backoff_factor`, `retry_backoff_max`, `retry_jitter`, and `retry_for`,
exception types read from the registered task, never from the wire), with the settings as
defaults. Delays grow exponentially and are jittered, so a fleet of failing tasks does not
retry in lockstep.
"""

from __future__ import annotations

import random

from src.engine.core.errors import CircuitOpenError
from src.engine.core.labels import RetryLabels


def should_retry(policy: RetryLabels, error: BaseException, failures: int) -> bool:
    """`failures` counts this one: the first failure is 1. An open circuit breaker is always
    worth retrying (whatever `retry_for` says): the call it guards was never made."""
    return (
        policy.retry_on_error
        and failures <= policy.max_retries
        and isinstance(error, (*policy.retry_for, CircuitOpenError))
    )


def delay_for(policy: RetryLabels, error: BaseException, failures: int) -> float:
    """An open breaker's retry waits until its trial may run; any other, the backoff."""
    if isinstance(error, CircuitOpenError):
        return error.retry_in_s
    return delay_s(policy, failures)


def envelope_s(policy: RetryLabels, failures: int) -> float:
    """The un-jittered delay before retry number `failures`: base * factor^(n-1), capped."""
    exponent = max(0, failures - 1)
    try:
        delay = policy.backoff_s * policy.factor**exponent
    except OverflowError:
        delay = policy.backoff_max_s
    return min(policy.backoff_max_s, delay)


def delay_s(policy: RetryLabels, failures: int, rng: random.Random | None = None) -> float:
    """Full jitter (uniform 0..envelope) spreads a thundering herd best; equal jitter keeps a
    floor of half the envelope; none is the envelope itself."""
    ceiling = envelope_s(policy, failures)
    if policy.jitter == "none":
        return ceiling
    draw = (rng or random).random()
    if policy.jitter == "equal":
        return ceiling / 2 + draw * ceiling / 2
    return draw * ceiling
