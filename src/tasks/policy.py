"""Retry policy: taskiq's label names, project-wide defaults, exponential backoff with jitter.

Labels (per task or per dispatch) override settings:
`retry_on_error`, `max_retries`, `retry_backoff` (s), `retry_backoff_factor`,
`retry_backoff_max` (s), `retry_jitter` (`full` | `equal` | `none`), and `retry_for`, a tuple of
exception types that may be retried (read from the registered task, never from the wire).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from src.config import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry_on_error: bool
    max_retries: int
    backoff_s: float
    factor: float
    backoff_max_s: float
    jitter: str
    retry_for: tuple[type[BaseException], ...] = (Exception,)

    @classmethod
    def resolve(
        cls, labels: dict[str, Any], local_labels: dict[str, Any], settings: Settings
    ) -> RetryPolicy:
        def pick(name: str, default: Any) -> Any:
            return labels.get(name, local_labels.get(name, default))

        retry_for = local_labels.get("retry_for") or (Exception,)
        if isinstance(retry_for, type):
            retry_for = (retry_for,)
        return cls(
            retry_on_error=_as_bool(pick("retry_on_error", settings.retry_on_error)),
            max_retries=int(pick("max_retries", settings.max_retries)),
            backoff_s=float(pick("retry_backoff", settings.retry_backoff_s)),
            factor=float(pick("retry_backoff_factor", settings.retry_backoff_factor)),
            backoff_max_s=float(pick("retry_backoff_max", settings.retry_backoff_max_s)),
            jitter=str(pick("retry_jitter", settings.retry_jitter)),
            retry_for=tuple(retry_for),
        )

    def should_retry(self, error: BaseException, failures: int) -> bool:
        """`failures` counts this one: the first failure is 1."""
        return (
            self.retry_on_error
            and failures <= self.max_retries
            and isinstance(error, self.retry_for)
        )

    def envelope_s(self, failures: int) -> float:
        """The un-jittered delay before retry number `failures`: base * factor^(n-1), capped."""
        return min(self.backoff_max_s, self.backoff_s * self.factor ** max(0, failures - 1))

    def delay_s(self, failures: int, rng: random.Random | None = None) -> float:
        """Full jitter spreads a thundering herd best; equal jitter keeps a floor of half."""
        ceiling = self.envelope_s(failures)
        draw = (rng or random).random()
        if self.jitter == "none":
            return ceiling
        if self.jitter == "equal":
            return ceiling / 2 + draw * ceiling / 2
        return draw * ceiling


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
