"""The typed view of task labels: merging, defaults, and one named error per bad value."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from src.config import load_settings
from src.engine.core.errors import LabelError
from src.engine.core.labels import MAX_DELAY_S, Rate, TaskLabels, due_at

SETTINGS = load_settings(auth="disabled")


def read(labels: dict[str, Any], local: dict[str, Any] | None = None) -> TaskLabels:
    return TaskLabels.read(labels, local or {}, SETTINGS)


def test_defaults_come_from_the_settings() -> None:
    labels = read({})
    assert (labels.queue, labels.lane, labels.dispatch) == ("default", "normal", 1)
    assert labels.retry.retry_on_error is SETTINGS.retry_on_error
    assert labels.retry.max_retries == SETTINGS.max_retries
    assert labels.retry.jitter == "full"
    assert (labels.timeout_s, labels.soft_timeout_s, labels.max_age_s) == (None, None, 0.0)
    assert (labels.rate, labels.concurrency, labels.limit_key) == (None, None, None)
    assert labels.dead_letter is True
    assert labels.api is False


def test_dispatch_labels_win_over_the_registered_task() -> None:
    labels = read({"max_retries": 7, "queue_name": "email"}, {"max_retries": 1, "api": True})
    assert labels.retry.max_retries == 7
    assert labels.queue == "email"
    assert labels.api is True


def test_retry_for_is_read_from_the_registered_task_only() -> None:
    assert read({}, {"retry_for": ConnectionError}).retry.retry_for == (ConnectionError,)
    assert read({}, {"retry_for": (KeyError, OSError)}).retry.retry_for == (KeyError, OSError)
    with pytest.raises(LabelError, match="retry_for"):
        read({}, {"retry_for": ("ConnectionError",)})


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"max_age": "abc"}, "max_age"),
        ({"max_age": -1}, "max_age"),
        ({"max_retries": "x"}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"retry_backoff": math.inf}, "retry_backoff"),
        ({"retry_backoff_factor": 0.5}, "retry_backoff_factor"),
        ({"retry_jitter": "lots"}, "retry_jitter"),
        ({"retry_on_error": "maybe"}, "retry_on_error"),
        ({"timeout": "soon"}, "timeout"),
        ({"soft_timeout": math.nan}, "soft_timeout"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "2"}, "concurrency"),
        ({"rate_limit": "lots"}, "rate_limit"),
        ({"rate_limit": 5}, "rate_limit"),
        ({"limit_key": []}, "limit_key"),
        ({"priority": 10}, "priority"),
        ({"priority": "urgent"}, "priority"),
        ({"priority": True}, "priority"),
        ({"dispatch": 0}, "dispatch"),
        ({"dispatch": "2"}, "dispatch"),
        ({"queue_name": "a.b"}, "queue name"),
        ({"queue_name": "x" * 65}, "queue name"),
        ({"client_id": "web.*"}, "client_id"),
        ({"dead_letter": "perhaps"}, "dead_letter"),
        ({"idempotency_key": {"a": 1}}, "idempotency_key"),
        ({"ack_type": "when_received"}, "ack_type"),
        ({"workflow": "w1"}, "workflow"),
        ({"workflow": {"id": "w1"}}, "workflow"),
        ({"workflow": {"id": "w.1", "step": "a"}}, "workflow"),
    ],
)
def test_a_bad_value_is_a_label_error_naming_the_label(labels: dict[str, Any], named: str) -> None:
    with pytest.raises(LabelError, match=named):
        read(labels)


def test_booleans_accept_their_usual_spellings() -> None:
    assert read({"retry_on_error": "yes"}).retry.retry_on_error is True
    assert read({"dead_letter": "false"}).dead_letter is False
    assert read({"dead_letter": 0}).dead_letter is False


def test_zero_timeouts_mean_none() -> None:
    assert read({"timeout": 0, "soft_timeout": 0}).timeout_s is None


def test_lenient_keeps_what_is_valid_and_defaults_the_rest() -> None:
    labels = TaskLabels.lenient({"dispatch": 3, "client_id": "web-1", "max_age": "abc"}, SETTINGS)
    assert (labels.dispatch, labels.client_id, labels.max_age_s) == (3, "web-1", 0.0)
    fallback = TaskLabels.lenient({"dispatch": "x", "client_id": "a.b"}, SETTINGS)
    assert (fallback.dispatch, fallback.client_id) == (1, None)


def test_limit_scope_comes_from_the_named_keyword_argument() -> None:
    labels = read({"concurrency": 1, "limit_key": "customer"})
    assert labels.limit_scope({"customer": 42}) == "42"
    assert read({}).limit_scope({"customer": 42}) is None
    with pytest.raises(LabelError, match="not a keyword argument"):
        labels.limit_scope({"other": 1})


@pytest.mark.parametrize(
    ("text", "count", "per_s"),
    [("100/m", 100, 60.0), ("5/s", 5, 1.0), ("10/2h", 10, 7200.0), (" 3 / 10 sec ", 3, 10.0)],
)
def test_rates_parse(text: str, count: int, per_s: float) -> None:
    assert Rate.parse(text) == Rate(count, per_s)


@pytest.mark.parametrize("text", ["0/s", "5/0s", "5", "5/d", "-1/s", "", "5/ m/"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(LabelError, match="rate_limit"):
        Rate.parse(text)


def test_due_time_from_delay_and_eta() -> None:
    now = 1_800_000_000.0
    assert due_at({}, now) is None
    assert due_at({"delay": 0}, now) is None
    assert due_at({"delay": 2.5}, now) == now + 2.5
    assert due_at({"eta": now + 60}, now) == now + 60
    iso = datetime.fromtimestamp(now + 60, UTC).isoformat()
    assert due_at({"eta": iso}, now) == now + 60
    naive = datetime.fromtimestamp(now + 60, UTC).replace(tzinfo=None).isoformat()
    assert due_at({"eta": naive}, now) == now + 60, "a time without a zone is UTC"
    assert due_at({"eta": now - 60}, now) == now - 60, "a past eta: due at once"


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"delay": -1}, "delay"),
        ({"delay": MAX_DELAY_S + 1}, "delay"),
        ({"delay": "later"}, "delay"),
        ({"eta": "tomorrow"}, "eta"),
        ({"eta": "9999-01-01T00:00:00"}, "eta"),
        ({"eta": -5}, "eta"),
        ({"eta": math.inf}, "eta"),
        ({"eta": True}, "eta"),
    ],
)
def test_bad_delays_and_etas_are_refused(labels: dict[str, Any], named: str) -> None:
    with pytest.raises(LabelError, match=named):
        due_at(labels, 1_800_000_000.0)


def test_the_workflow_label_names_the_workflow_and_step() -> None:
    step = read({"workflow": {"id": "wf1", "step": "2-add"}}).workflow
    assert step is not None
    assert (step.workflow_id, step.step) == ("wf1", "2-add")
    assert read({}).workflow is None
    salvaged = TaskLabels.lenient(
        {"workflow": {"id": "wf1", "step": "a"}, "priority": 99}, SETTINGS
    )
    assert salvaged.workflow == step.__class__("wf1", "a"), "a bad label still ends the step"
