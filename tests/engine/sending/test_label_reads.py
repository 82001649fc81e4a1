"""Remembered label reads say exactly what a fresh `TaskLabels.read` says, refusals included."""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest

from src.config import load_settings
from src.engine.core.errors import LabelError
from src.engine.core.labels import TaskLabels
from src.engine.sending.label_reads import LabelReads

SETTINGS = load_settings(nats_url="nats://127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")


class Queue(enum.Enum):
    EMAIL = "email"


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"queue_name": "email", "priority": 9, "tags": ["money"], "reason": {"code": 7}},
        {"max_retries": 2, "retry_backoff": 0.5, "timeout": 10},
    ],
)
def test_a_remembered_read_is_the_fresh_read(labels: dict[str, Any]) -> None:
    reads = LabelReads()
    first = reads.read(labels, SETTINGS)
    assert reads.read(dict(labels), SETTINGS) is first, "remembered"
    assert first == TaskLabels.read(labels, {}, SETTINGS)


def test_retry_for_is_checked_and_part_of_what_is_remembered() -> None:
    reads = LabelReads()
    assert reads.read({}, SETTINGS, ConnectionError).retry.retry_for == (ConnectionError,)
    assert reads.read({}, SETTINGS).retry.retry_for == (Exception,)
    with pytest.raises(LabelError, match="retry_for"):
        reads.read({}, SETTINGS, "ConnectionError")


def test_a_refused_label_is_refused_every_time() -> None:
    reads = LabelReads()
    for _ in range(2):
        with pytest.raises(LabelError, match="max_retries"):
            reads.read({"max_retries": -1}, SETTINGS)


@pytest.mark.parametrize(
    ("good", "bad", "match"),
    [
        ({"timeout": None}, {"timeout": math.nan}, "timeout"),  # JSON writes NaN as null
        ({"max_age": None}, {"max_age": math.inf}, "max_age"),
        ({"queue_name": "email"}, {"queue_name": Queue.EMAIL}, "queue name"),
        ({"max_retries": 1}, {"max_retries": True}, "max_retries"),
        (
            {"workflow": {"id": "w", "step": "s"}},
            {"workflow": {"id": "w", "step": Queue.EMAIL}},
            "workflow",
        ),
    ],
)
def test_labels_that_look_alike_in_json_are_not_taken_for_each_other(
    good: dict[str, Any], bad: dict[str, Any], match: str
) -> None:
    reads = LabelReads()
    reads.read(good, SETTINGS)
    with pytest.raises(LabelError, match=match):
        reads.read(bad, SETTINGS)


def test_other_settings_are_read_afresh() -> None:
    reads = LabelReads()
    other = load_settings(
        nats_url="nats://127.0.0.1:1", redis_url="redis://127.0.0.1:1/0", default_queue="other"
    )
    assert reads.read({}, SETTINGS).queue == SETTINGS.default_queue
    assert reads.read({}, other).queue == "other"


def test_what_is_remembered_is_bounded() -> None:
    reads = LabelReads(size=4)
    for i in range(10):
        assert reads.read({"client_id": f"c{i}"}, SETTINGS).client_id == f"c{i}"
    assert len(reads._reads) <= 4


def test_a_task_s_registered_labels_are_part_of_what_is_remembered() -> None:
    """A worker reads each delivery's labels over its task's registered ones: two tasks sent
    with the same labels keep their own registered ones."""
    reads = LabelReads()
    slow = {"timeout": 30, "retry_for": (ConnectionError,)}
    fast = {"timeout": 1}
    first = reads.read_for_task({"priority": 9}, "app:slow", slow, SETTINGS)
    assert first == TaskLabels.read({"priority": 9}, slow, SETTINGS)
    assert reads.read_for_task({"priority": 9}, "app:slow", slow, SETTINGS) is first
    other = reads.read_for_task({"priority": 9}, "app:fast", fast, SETTINGS)
    assert (first.timeout_s, other.timeout_s) == (30, 1)
    assert other.retry.retry_for == (Exception,)
    assert reads.read({"priority": 9}, SETTINGS).timeout_s is None, "a sender's read apart"
    with pytest.raises(LabelError, match="max_retries"):
        reads.read_for_task({"max_retries": -1}, "app:fast", fast, SETTINGS)
