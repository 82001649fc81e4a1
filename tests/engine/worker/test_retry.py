"""Retry policy and backoff: exponential envelopes, and each jitter mode's range and spread."""

from __future__ import annotations

import random
import statistics

import pytest

from src.engine.core.errors import CircuitOpenError
from src.engine.core.labels import RetryLabels
from src.engine.worker.retry import delay_for, delay_s, envelope_s, should_retry


def policy(**overrides: object) -> RetryLabels:
    values: dict[str, object] = {
        "retry_on_error": True,
        "max_retries": 3,
        "backoff_s": 1.0,
        "factor": 2.0,
        "backoff_max_s": 600.0,
        "jitter": "full",
        "retry_for": (ConnectionError,),
    }
    values.update(overrides)
    return RetryLabels(**values)  # type: ignore[arg-type]


def test_should_retry_counts_failures_and_kinds() -> None:
    p = policy()
    assert [should_retry(p, ConnectionError(), n) for n in (1, 2, 3, 4)] == [True] * 3 + [False]
    assert not should_retry(p, ValueError(), 1), "not a retryable kind"
    assert not should_retry(policy(retry_on_error=False), ConnectionError(), 1)
    assert not should_retry(policy(max_retries=0), ConnectionError(), 1)


def test_an_open_breaker_is_retried_after_its_open_time_left() -> None:
    p = policy(retry_for=(ValueError,))
    error = CircuitOpenError.of("model-api", 12.5)
    assert should_retry(p, error, 1), "retryable whatever retry_for names"
    assert delay_for(p, error, 1) == 12.5, "not the backoff: the time until a trial"
    assert not should_retry(p, error, 4), "still bounded by max_retries"
    assert not should_retry(policy(retry_on_error=False), error, 1)
    assert delay_for(policy(jitter="none"), ConnectionError(), 2) == 2.0


def test_envelopes_grow_exponentially_up_to_the_cap() -> None:
    p = policy(backoff_s=0.5, factor=3.0, backoff_max_s=10.0)
    assert [envelope_s(p, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert envelope_s(policy(), 100_000) == 600.0, "no overflow for a huge count"


def _draws(jitter: str, failures: int = 3, n: int = 4000) -> list[float]:
    rng = random.Random(1234)
    p = policy(jitter=jitter)
    return [delay_s(p, failures, rng) for _ in range(n)]


def test_no_jitter_is_the_envelope() -> None:
    assert set(_draws("none")) == {4.0}


def test_full_jitter_spreads_over_the_whole_envelope() -> None:
    draws = _draws("full")
    assert all(0.0 <= d <= 4.0 for d in draws)
    assert min(draws) < 0.1, "reaches near zero"
    assert max(draws) > 3.9, "reaches near the envelope"
    assert statistics.mean(draws) == pytest.approx(2.0, abs=0.1), "uniform over 0..4"
    assert statistics.pstdev(draws) == pytest.approx(4.0 / 12**0.5, abs=0.1)


def test_equal_jitter_keeps_half_the_envelope_as_a_floor() -> None:
    draws = _draws("equal")
    assert all(2.0 <= d <= 4.0 for d in draws)
    assert min(draws) < 2.05
    assert max(draws) > 3.95
    assert statistics.mean(draws) == pytest.approx(3.0, abs=0.05), "uniform over 2..4"


def test_the_same_seed_gives_the_same_delays() -> None:
    assert _draws("full", n=20) == _draws("full", n=20)
