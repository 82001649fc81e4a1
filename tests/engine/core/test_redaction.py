"""Redaction: values under secret-looking keys hidden at any depth, in any case."""

from __future__ import annotations

from typing import Any

from src.engine.core.redaction import REDACTED, redact, redact_arguments

DATA: dict[str, Any] = {
    "user": "ann",
    "Password": "hunter2",
    "nested": [{"X-Api-Key": "k-one"}, {"deep": {"API_KEY": "k-two", "note": "kept"}}],
    "rows": [[{"access_token": "t-three"}]],
    "db": {"credentials": {"user": "c-four"}},
}


def test_redact_walks_every_level_whatever_the_case() -> None:
    assert redact(DATA) == {
        "user": "ann",
        "Password": REDACTED,
        "nested": [{"X-Api-Key": REDACTED}, {"deep": {"API_KEY": REDACTED, "note": "kept"}}],
        "rows": [[{"access_token": REDACTED}]],
        "db": {"credentials": REDACTED},
    }
    assert redact([{"secret": {"a": 1}}, ("x", {"passwd": 2})]) == [
        {"secret": REDACTED},
        ["x", {"passwd": REDACTED}],
    ]
    assert redact("password") == "password", "only keys name secrets"
    deep: Any = {"password": "p-five"}
    for _ in range(500):
        deep = {"a": deep}
    assert "p-five" not in repr(redact(deep)), "too deep to check is hidden, never shown"


def test_arguments_are_redacted_by_keyword_and_inside_positional_values() -> None:
    args, kwargs = redact_arguments([{"Token": "t"}, 1], {"PassWord": "p", "user": {"secret": 2}})
    assert args == [{"Token": REDACTED}, 1]
    assert kwargs == {"PassWord": REDACTED, "user": {"secret": REDACTED}}
