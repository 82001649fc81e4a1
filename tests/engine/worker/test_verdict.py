"""The worker's verdict on a finished delivery: one action, decided in one place."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from src.engine.worker.verdict import Verdict, verdict


def delivery(**facts: Any) -> Any:
    values = {"save_failed": False, "retry_in_s": None, "dead": None, **facts}
    return SimpleNamespace(**values)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, Verdict("ack")),
        ({"retry_in_s": 1.5}, Verdict("retry", 1.5)),
        ({"dead": object()}, Verdict("dead_letter")),
        ({"save_failed": True}, Verdict("redeliver", 2.0)),
        # An outcome that was not saved wins: nothing is acked, retried or buried on a guess.
        ({"save_failed": True, "retry_in_s": 1.5}, Verdict("redeliver", 2.0)),
        ({"save_failed": True, "dead": object()}, Verdict("redeliver", 2.0)),
        # A retry is decided before a dead letter can be.
        ({"retry_in_s": 0.0, "dead": object()}, Verdict("retry", 0.0)),
    ],
)
def test_verdict(facts: dict[str, Any], expected: Verdict) -> None:
    assert verdict(delivery(**facts), redelivery_delay_s=2.0) == expected
